#!/usr/bin/env python3
"""scripts/peers/sigv4_botocore.py: signs requests with botocore's SigV4Auth (an implementation
independent of streamhost's connectors/kinesis/sh_sigv4.c) at a fixed time, for the signer's
spec. Reads JSON cases from stdin, a list of
  {"url", "method", "headers": {name: value}, "body", "region", "service",
   "time": "YYYYMMDDTHHMMSSZ", "key", "secret", "token" (or null)}
and prints each one's Authorization header, one a line."""
import datetime
import json
import sys

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class FixedClock:
    """Stands in for the datetime module in botocore.auth: utcnow() is the case's time."""
    now = None

    class datetime:
        @staticmethod
        def utcnow():
            return FixedClock.now


def main():
    cases = json.load(sys.stdin)
    for c in cases:
        FixedClock.now = datetime.datetime.strptime(c['time'], '%Y%m%dT%H%M%SZ')
        botocore.auth.datetime = FixedClock
        if hasattr(botocore.auth, 'get_current_datetime'):
            botocore.auth.get_current_datetime = lambda: FixedClock.now
        req = AWSRequest(method=c['method'], url=c['url'], headers=dict(c['headers']),
                         data=c['body'].encode('utf-8'))
        creds = Credentials(c['key'], c['secret'], c.get('token'))
        botocore.auth.SigV4Auth(creds, c['service'], c['region']).add_auth(req)
        print(req.headers['Authorization'])


if __name__ == '__main__':
    main()
