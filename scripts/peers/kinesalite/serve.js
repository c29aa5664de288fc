// scripts/peers/kinesalite/serve.js: the Kinesis test peer: kinesalite (in memory) listening on
// 127.0.0.1 only, on a free port unless --port is given; prints "port N" once it listens.
// usage: node serve.js [--port N] [--createStreamMs MS] [--deleteStreamMs MS] [--updateStreamMs MS] [--shardLimit N]
const kinesalite = require('kinesalite')

const opts = {}
const args = process.argv.slice(2)
for (let i = 0; i < args.length; i += 2) {
  const name = args[i].replace(/^--/, '')
  opts[name] = Number(args[i + 1])
}
const port = opts.port || 0
delete opts.port
const server = kinesalite(opts)
server.listen(port, '127.0.0.1', () => {
  process.stdout.write('port ' + server.address().port + '\n')
})
// Ends with its parent's pipe (a test that dies leaves no server behind).
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
