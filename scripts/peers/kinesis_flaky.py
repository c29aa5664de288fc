#!/usr/bin/env python3
"""scripts/peers/kinesis_flaky.py: a Kinesis endpoint on 127.0.0.1 that fails on purpose, for
the receiver's error paths that kinesalite cannot provoke (it enforces no read limits, and its
iterators expire only after 5 minutes). It speaks the JSON 1.1 protocol over real HTTP, one
stream "flaky" of one shard, and follows a script:
  ListShards:  500, then 400 LimitExceededException, then the shard
  GetRecords:  400 ProvisionedThroughputExceededException; records 1-3; 400
               ExpiredIteratorException; 503; records 4-5; a malformed answer; a 502 HTML page;
               Records not an array; record 6 with Data not base64, record 7 without Data,
               record 8; record 9; then nothing new (the iterator goes on)
With --latest-expires the first GetRecords answers ExpiredIteratorException, then records as
usual (a LATEST reader's first iterator expires before it read anything).
With --describe it knows no ListShards (400 UnknownOperationException, as an older endpoint)
and lists two shards with DescribeStream, one a page; each shard holds one record
"from-SHARDID".
With --paged ListShards lists two shards, one a page; the first NextToken it gives has expired
when it is used (400 ExpiredNextTokenException, each time), later ones are good; each shard
holds one record "from-SHARDID"; ListShards lines end with "next=TOKEN" when one was sent.
With --behind it lists 12 shards whose GetRecords always answer one record and
MillisBehindLatest 60000 (a reader far behind: it may ask again at once, the service allows 5
GetRecords a second per shard), each answer 100 ms after the request; their request lines end
with "it=new-SHARDID", the Limit and "inflight=N": the GetRecords being answered at once,
this one included.
Prints "port N" once it listens, then one line per request: OP [ShardIteratorType
[StartingSequenceNumber]], "signed" when botocore's SigV4Auth, given the request's headers and
the secret "secret", computes the very Authorization header it carried (else "unsigned"), and
"token=T" when it carried an X-Amz-Security-Token."""
import base64
import datetime
import json
import sys
import threading
import time

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SHARD = {'ShardId': 'shardId-000000000000', 'HashKeyRange': {'StartingHashKey': '0',
         'EndingHashKey': '340282366920938463463374607431768211455'},
         'SequenceNumberRange': {'StartingSequenceNumber': '100'}}


def rec(i):
    return {'SequenceNumber': str(100 + i), 'PartitionKey': 'k',
            'Data': base64.b64encode(('rec-%d' % i).encode()).decode(),
            'ApproximateArrivalTimestamp': 1700000000.5}


LIST = [(500, {'__type': 'InternalFailure', 'message': 'try again'}),
        (400, {'__type': 'LimitExceededException', 'message': 'Rate exceeded for stream flaky'})]
GET = [(400, {'__type': 'ProvisionedThroughputExceededException', 'message': 'Rate exceeded for shard'}),
       (200, {'Records': [rec(1), rec(2), rec(3)], 'NextShardIterator': 'it', 'MillisBehindLatest': 0}),
       (400, {'__type': 'ExpiredIteratorException', 'message': 'Iterator expired'}),
       (503, {'__type': 'ServiceUnavailable', 'message': 'slow down'}),
       (200, {'Records': [rec(4), rec(5)], 'NextShardIterator': 'it', 'MillisBehindLatest': 0}),
       (200, '{"Records": [ {"Data": "broken'),
       (502, '<html><body>Bad Gateway</body></html>'),
       (200, {'Records': 'none', 'NextShardIterator': 'it'}),
       (200, {'Records': [{'SequenceNumber': '106', 'PartitionKey': 'k', 'Data': '@@not base64@@'},
                          {'SequenceNumber': '107', 'PartitionKey': 'k'}, rec(8)],
              'NextShardIterator': 'it', 'MillisBehindLatest': 0}),
       (200, {'Records': [rec(9)], 'NextShardIterator': 'it', 'MillisBehindLatest': 0})]


SECRET = 'secret'


class FixedClock:
    """Stands in for the datetime module in botocore.auth: utcnow() is the request's X-Amz-Date."""
    now = None

    class datetime:
        @staticmethod
        def utcnow():
            return FixedClock.now


def verify(headers, body):
    """Whether the request's Authorization is what botocore signs for it."""
    auth = headers.get('Authorization') or ''
    if not auth.startswith('AWS4-HMAC-SHA256 Credential='):
        return False
    key = auth.split('Credential=')[1].split('/')[0]
    region = auth.split('Credential=')[1].split('/')[2]
    FixedClock.now = datetime.datetime.strptime(headers.get('X-Amz-Date', ''), '%Y%m%dT%H%M%SZ')
    botocore.auth.datetime = FixedClock
    if hasattr(botocore.auth, 'get_current_datetime'):
        botocore.auth.get_current_datetime = lambda: FixedClock.now
    req = AWSRequest(method='POST', url='http://' + headers['Host'] + '/', data=body,
                     headers={'Host': headers['Host'], 'Content-Type': headers.get('Content-Type', ''),
                              'X-Amz-Target': headers.get('X-Amz-Target', '')})
    token = headers.get('X-Amz-Security-Token')
    botocore.auth.SigV4Auth(Credentials(key, SECRET, token), 'kinesis', region).add_auth(req)
    return req.headers['Authorization'] == auth


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/x-amz-json-1.1')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        raw = self.rfile.read(n)
        req = json.loads(raw or b'{}')
        op = (self.headers.get('X-Amz-Target') or '').split('.')[-1]
        signed = verify(self.headers, raw)
        token = self.headers.get('X-Amz-Security-Token')
        line = [op, req.get('ShardIteratorType', ''), req.get('StartingSequenceNumber', ''),
                'at=%.3f' % req['Timestamp'] if 'Timestamp' in req else '',
                'signed' if signed else 'unsigned', 'token=' + token if token else '']
        if PAGED and op == 'ListShards' and 'NextToken' in req:
            line.append('next=' + req['NextToken'])
        if BEHIND and op == 'GetRecords':
            with LOCK:
                INFLIGHT[0] += 1
                now = INFLIGHT[0]
            line += ['it=' + req.get('ShardIterator', ''), 'limit=%s' % req.get('Limit'),
                     'inflight=%d' % now]
        print(' '.join(x for x in line if x), flush=True)
        if DESCRIBE:
            self.describe_mode(op, req)
        elif PAGED and op == 'ListShards':
            shards = [dict(SHARD), dict(SHARD, ShardId='shardId-000000000001')]
            token = req.get('NextToken')
            if token is None:
                with LOCK:
                    COUNTER[0] += 1
                    n = COUNTER[0]
                self.answer(200, {'Shards': shards[:1], 'NextToken': 'page2-%d' % n})
            elif token == 'page2-1':
                self.answer(400, {'__type': 'ExpiredNextTokenException',
                                  'message': 'The timestamp sent in the NextToken has expired'})
            else:
                self.answer(200, {'Shards': shards[1:]})
        elif PAGED:
            self.describe_mode(op, req)
        elif BEHIND:
            self.behind_mode(op, req)
        elif op == 'ListShards':
            self.answer(*(LIST.pop(0) if LIST else (200, {'Shards': [SHARD]})))
        elif op == 'GetShardIterator':
            self.answer(200, {'ShardIterator': 'it'})
        elif op == 'GetRecords':
            self.answer(*(GET.pop(0) if GET else (200, {'Records': [], 'NextShardIterator': 'it',
                                                        'MillisBehindLatest': 0})))
        else:
            self.answer(400, {'__type': 'UnknownOperationException'})


    def describe_mode(self, op, req):
        shards = [dict(SHARD), dict(SHARD, ShardId='shardId-000000000001')]
        if op == 'DescribeStream':
            first = req.get('ExclusiveStartShardId') is None
            page = shards[:1] if first else [s for s in shards if s['ShardId'] > req['ExclusiveStartShardId']]
            self.answer(200, {'StreamDescription': {'StreamName': req['StreamName'], 'StreamStatus': 'ACTIVE',
                                                    'Shards': page, 'HasMoreShards': first}})
        elif op == 'GetShardIterator':
            self.answer(200, {'ShardIterator': 'new-' + req['ShardId']})
        elif op == 'GetRecords':
            it = req['ShardIterator']
            shard = it.split('-', 1)[1]
            recs = []
            if it.startswith('new-'):
                r = rec(1)
                r['Data'] = base64.b64encode(('from-' + shard).encode()).decode()
                recs = [r]
            self.answer(200, {'Records': recs, 'NextShardIterator': 'old-' + shard, 'MillisBehindLatest': 0})
        else:
            self.answer(400, {'__type': 'UnknownOperationException', 'message': op})


    def behind_mode(self, op, req):
        shards = [dict(SHARD, ShardId='shardId-%012d' % i) for i in range(12)]
        if op == 'ListShards':
            self.answer(200, {'Shards': shards})
        elif op == 'GetShardIterator':
            self.answer(200, {'ShardIterator': 'new-' + req['ShardId']})
        elif op == 'GetRecords':
            with LOCK:
                COUNTER[0] += 1
                r = rec(COUNTER[0])
            time.sleep(0.1)
            with LOCK:
                INFLIGHT[0] -= 1
            self.answer(200, {'Records': [r], 'NextShardIterator': req['ShardIterator'],
                              'MillisBehindLatest': 60000})
        else:
            self.answer(400, {'__type': 'UnknownOperationException', 'message': op})


LOCK = threading.Lock()
COUNTER = [0]
INFLIGHT = [0]
BEHIND = '--behind' in sys.argv
PAGED = '--paged' in sys.argv
DESCRIBE = '--describe' in sys.argv
if '--latest-expires' in sys.argv:
    LIST.clear()
    GET[:] = [(400, {'__type': 'ExpiredIteratorException', 'message': 'Iterator expired'}),
              (200, {'Records': [rec(1)], 'NextShardIterator': 'it', 'MillisBehindLatest': 0})]


def main():
    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    print('port %d' % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == '__main__':
    sys.exit(main())
