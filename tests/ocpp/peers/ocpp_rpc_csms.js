// A CSMS on the npm package ocpp-rpc in strict mode (every frame in both directions is validated against
// the official OCPP 1.6 schemas). Protocol with the Python test: JSON lines.
//   stdout: {"event": "listening", "port"} | {"event": "call", "action", "payload"} |
//           {"event": "result"|"error", "id", ...} | {"event": "strictValidationFailure"|"badMessage", ...}
//   stdin:  {"id", "action", "payload"}  -> a call to the connected station
const { RPCServer, createRPCError } = require('ocpp-rpc');
const readline = require('readline');

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const server = new RPCServer({ protocols: ['ocpp1.6'], strictMode: true });
let station = null;
let transactionId = 0;
const now = () => new Date().toISOString();

server.on('client', (client) => {
  station = client;
  out({ event: 'connected', identity: client.identity, protocol: client.protocol });
  client.on('strictValidationFailure', (f) => out({ event: 'strictValidationFailure', method: f.method,
    outbound: f.outbound, isCall: f.isCall, error: String(f.error) }));
  client.on('badMessage', (b) => out({ event: 'badMessage', error: String(b.error) }));
  client.on('close', () => out({ event: 'disconnected' }));
  const record = (action, answer) => client.handle(action, ({ params }) => {
    out({ event: 'call', action, payload: params });
    return answer(params);
  });
  record('BootNotification', () => ({ status: 'Accepted', currentTime: now(), interval: 300 }));
  record('Heartbeat', () => ({ currentTime: now() }));
  record('StatusNotification', () => ({}));
  record('Authorize', () => ({ idTagInfo: { status: 'Accepted' } }));
  record('StartTransaction', () => ({ transactionId: ++transactionId, idTagInfo: { status: 'Accepted' } }));
  record('StopTransaction', () => ({ idTagInfo: { status: 'Accepted' } }));
  record('MeterValues', () => ({}));
  record('DataTransfer', (p) => ({ status: 'Accepted', data: p.data }));
  record('FirmwareStatusNotification', () => ({}));
  record('DiagnosticsStatusNotification', () => ({}));
  client.handle(({ method, params }) => {
    out({ event: 'call', action: method, payload: params, unhandled: true });
    throw createRPCError('NotImplemented');
  });
});

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const request = JSON.parse(line);
  try {
    const result = await station.call(request.action, request.payload);
    out({ event: 'result', id: request.id, result });
  } catch (error) {
    out({ event: 'error', id: request.id, error: String(error), code: error.rpcErrorCode || null });
  }
});

server.listen(0, '127.0.0.1').then((http) => out({ event: 'listening', port: http.address().port }));
