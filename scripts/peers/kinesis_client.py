#!/usr/bin/env python3
"""scripts/peers/kinesis_client.py: a Kinesis client for the specs and the benchmark, made with
botocore (an implementation independent of streamhost's): creates streams, puts records, splits
shards, against an endpoint such as kinesalite on 127.0.0.1.

usage: kinesis_client.py ENDPOINT COMMAND ARGS...
  create STREAM SHARDS          create the stream and wait until it is ACTIVE
  put STREAM FILE               put FILE's lines "partitionkey<TAB>data" with PutRecords
                                (500 a call, failed records put again); prints "put N"
  split STREAM SHARD            split SHARD at the middle of its hash key range, wait ACTIVE;
                                prints the open shards after it
  shards STREAM                 prints "SHARDID PARENT|- open|closed" per shard
"""
import sys
import time

import botocore.session
from botocore.config import Config


def client(endpoint):
    s = botocore.session.get_session()
    return s.create_client('kinesis', region_name='us-east-1', endpoint_url=endpoint,
                           aws_access_key_id='test', aws_secret_access_key='test',
                           config=Config(retries={'max_attempts': 10}))


def wait_active(c, stream):
    deadline = time.time() + 30
    while time.time() < deadline:
        d = c.describe_stream_summary(StreamName=stream)['StreamDescriptionSummary']
        if d['StreamStatus'] == 'ACTIVE':
            return
        time.sleep(0.02)
    raise SystemExit('stream %s did not become ACTIVE' % stream)


def put(c, stream, path):
    with open(path, 'rb') as f:
        lines = [l.rstrip(b'\n') for l in f if l.strip()]
    recs = []
    for l in lines:
        key, _, data = l.partition(b'\t')
        recs.append({'PartitionKey': key.decode(), 'Data': data})
    n = 0
    for i in range(0, len(recs), 500):
        batch = recs[i:i + 500]
        while batch:
            out = c.put_records(StreamName=stream, Records=batch)
            retry = [r for r, a in zip(batch, out['Records']) if 'ErrorCode' in a]
            n += len(batch) - len(retry)
            batch = retry
    print('put %d' % n)


def main(argv):
    endpoint, cmd, args = argv[1], argv[2], argv[3:]
    c = client(endpoint)
    if cmd == 'create':
        c.create_stream(StreamName=args[0], ShardCount=int(args[1]))
        wait_active(c, args[0])
        print('created')
    elif cmd == 'put':
        put(c, args[0], args[1])
    elif cmd == 'split':
        shards = c.list_shards(StreamName=args[0])['Shards']
        s = [x for x in shards if x['ShardId'] == args[1]][0]
        lo, hi = int(s['HashKeyRange']['StartingHashKey']), int(s['HashKeyRange']['EndingHashKey'])
        c.split_shard(StreamName=args[0], ShardToSplit=args[1], NewStartingHashKey=str((lo + hi) // 2 + 1))
        wait_active(c, args[0])
        print('split')
    elif cmd == 'shards':
        for s in c.list_shards(StreamName=args[0])['Shards']:
            print(s['ShardId'], s.get('ParentShardId', '-'),
                  'closed' if 'EndingSequenceNumber' in s['SequenceNumberRange'] else 'open')
    else:
        raise SystemExit('unknown command ' + cmd)


if __name__ == '__main__':
    main(sys.argv)
