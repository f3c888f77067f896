// An OCPP 1.6J or 2.0.1 CSMS on the npm package ocpp-rpc in strict mode: every frame in either direction
// is validated against the official OCPP JSON schemas that ocpp-rpc bundles (its own validator, ajv,
// and its own websocket stack, ws), independently of the Python `ocpp` package the station uses.
//
// Usage: node ocpp_rpc_csms.cjs '<settings JSON>'   (NODE_PATH must reach ocpp-rpc)
//   settings: {"protocol": "ocpp1.6" (default) | "ocpp2.0.1",
//              "password": "<Basic auth password required>" (optional),
//              "idTags": {"<idTag or 2.0.1 idToken>": "Blocked" | "Invalid" | ...} (default Accepted),
//              "heartbeatInterval": 300,
//              "registration": ["Rejected", "Pending"] (answers to the first BootNotifications, then Accepted),
//              "bootRetryInterval": 1 (interval sent with Pending/Rejected),
//              "firstTransactionId": 1, "pingIntervalMs": 1000,
//              "tls": {"cert", "key", "ca": PEM paths, "requireClientCertificate": false,
//                      "requestClientCertificate": false, "maxVersion": "TLSv1.3"}}
//   (with "tls": wss://, and the auth event reports the negotiated protocol, cipher and client certificate)
// Standard output: one JSON object per line, {"event": ...}:
//   listening {port} | auth {identity, accepted, reason} | connected {identity, protocol}
//   | disconnected {identity, code} | frame {identity, outbound, text} | call {identity, action, params}
//   | answer {id, result} or {id, error: {code, message}} | validation_failure {...} | bad_message {...}
//   | unhandled {identity, action}
// Standard input: one JSON object per line, a CSMS -> station call:
//   {"id": <any>, "identity": "CP1", "action": "Reset", "params": {"type": "Soft"}}
// whose outcome is reported as an `answer` line carrying the same id, or a control request:
//   {"id": <any>, "control": "refuse"}   drop every connection and refuse new ones (HTTP 503): the CSMS is away
//   {"id": <any>, "control": "accept", "firstTransactionId": 500}   accept connections again
'use strict';

const fs = require('node:fs');
const https = require('node:https');
const readline = require('node:readline');
const { RPCServer, createRPCError } = require('ocpp-rpc');

const settings = JSON.parse(process.argv[2] || '{}');
const protocol = settings.protocol || 'ocpp1.6';
const idTags = settings.idTags || {};
const heartbeatInterval = settings.heartbeatInterval ?? 300;
const registration = [...(settings.registration || [])]; // answers to successive BootNotifications
const bootRetryInterval = settings.bootRetryInterval ?? 1;
const clients = new Map();
let nextTransactionId = settings.firstTransactionId ?? 1;

function emit(event, fields) {
    process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

function describeError(error) {
    return { code: error.rpcErrorCode || error.name || 'Error', message: String(error.message || error) };
}

function idTagInfo(idTag) {
    return { status: idTags[idTag] || 'Accepted' };
}

const now = () => new Date().toISOString();

// Answers to the station's calls; every payload is validated against the *.conf schema by strict mode.
const answers = {
    BootNotification: () => {
        const status = registration.shift() || 'Accepted';
        return { status, currentTime: now(), interval: status === 'Accepted' ? heartbeatInterval : bootRetryInterval };
    },
    Heartbeat: () => ({ currentTime: now() }),
    StatusNotification: () => ({}),
    Authorize: (params) => ({ idTagInfo: idTagInfo(params.idTag) }),
    StartTransaction: (params) => ({ transactionId: nextTransactionId++, idTagInfo: idTagInfo(params.idTag) }),
    StopTransaction: (params) => (params.idTag ? { idTagInfo: idTagInfo(params.idTag) } : {}),
    MeterValues: () => ({}),
    DataTransfer: (params) => (params.vendorId === 'everpy.test'
        ? { status: 'Accepted', data: `echo:${params.data ?? ''}` }
        : { status: 'UnknownVendorId' }),
    FirmwareStatusNotification: () => ({}),
    DiagnosticsStatusNotification: () => ({}),
    // the 1.6 security extension (Security whitepaper)
    SecurityEventNotification: () => ({}),
    LogStatusNotification: () => ({}),
    SignedFirmwareStatusNotification: () => ({}),
    SignCertificate: () => ({ status: 'Accepted' }),
};

// OCPP 2.0.1: answers to the station's requests (schemas of ocpp-rpc's ocpp2.0.1 validator)
const idTokenInfo = (idToken) => ({ status: (idToken && idTags[idToken.idToken]) || 'Accepted' });
const answers201 = {
    BootNotification: () => {
        const status = registration.shift() || 'Accepted';
        return { status, currentTime: now(), interval: status === 'Accepted' ? heartbeatInterval : bootRetryInterval };
    },
    Heartbeat: () => ({ currentTime: now() }),
    StatusNotification: () => ({}),
    Authorize: (params) => ({ idTokenInfo: idTokenInfo(params.idToken) }),
    TransactionEvent: (params) => (params.idToken ? { idTokenInfo: idTokenInfo(params.idToken) } : {}),
    MeterValues: () => ({}),
    NotifyReport: () => ({}),
    NotifyEvent: () => ({}),
    NotifyMonitoringReport: () => ({}),
    NotifyCustomerInformation: () => ({}),
    NotifyChargingLimit: () => ({}),
    ClearedChargingLimit: () => ({}),
    ReportChargingProfiles: () => ({}),
    ReservationStatusUpdate: () => ({}),
    SecurityEventNotification: () => ({}),
    FirmwareStatusNotification: () => ({}),
    LogStatusNotification: () => ({}),
    SignCertificate: () => ({ status: 'Accepted' }),
    DataTransfer: (params) => (params.vendorId === 'everpy.test'
        ? { status: 'Accepted', data: `echo:${params.data ?? ''}` }
        : { status: 'UnknownVendorId' }),
};

const server = new RPCServer({
    protocols: [protocol],
    strictMode: true,
    callTimeoutMs: 15000,
    // websocket pings; a station that does not answer one before the next is dropped
    pingIntervalMs: settings.pingIntervalMs ?? 1000,
});

let refusing = false; // "offline" control: connections are dropped and refused with HTTP 503

// What a TLS connection negotiated (security profiles 2 and 3), reported with the auth event.
function tlsDetails(socket) {
    if (!socket.encrypted) return {};
    const peer = socket.getPeerCertificate();
    return {
        tls: {
            protocol: socket.getProtocol(), cipher: socket.getCipher().name,
            clientCertificate: peer && peer.subject ? { CN: peer.subject.CN, O: peer.subject.O } : null,
            clientCertificateTrusted: socket.authorized,
        },
    };
}

server.auth((accept, reject, handshake) => {
    const identity = handshake.identity;
    const tls = tlsDetails(handshake.request.socket);
    if (refusing) {
        emit('auth', { identity, accepted: false, reason: 'refusing connections', ...tls });
        reject(503, 'unavailable');
        return;
    }
    if (settings.password === undefined) {
        emit('auth', { identity, accepted: true, reason: 'no password required', ...tls });
        accept();
        return;
    }
    if (tls.tls && tls.tls.clientCertificateTrusted) { // security profile 3: the certificate is the credential
        emit('auth', { identity, accepted: true, reason: 'client certificate', ...tls });
        accept();
        return;
    }
    const given = handshake.password ? handshake.password.toString('utf8') : undefined;
    if (given === settings.password) {
        emit('auth', { identity, accepted: true, reason: 'password matches', ...tls });
        accept();
    } else {
        const reason = given === undefined ? 'no password' : 'wrong password';
        emit('auth', { identity, accepted: false, reason, ...tls });
        reject(401, 'bad credentials');
    }
});

server.on('client', (client) => {
    const identity = client.identity;
    clients.set(identity, client);
    emit('connected', { identity, protocol: client.protocol });

    client.on('message', ({ message, outbound }) => {
        emit('frame', { identity, outbound, text: message.toString() });
    });
    client.on('strictValidationFailure', (failure) => {
        emit('validation_failure', {
            identity, method: failure.method, outbound: failure.outbound, isCall: failure.isCall,
            params: failure.params, result: failure.result, error: describeError(failure.error),
        });
    });
    client.on('badMessage', ({ buffer, error }) => {
        emit('bad_message', { identity, text: buffer.toString(), error: describeError(error) });
    });
    client.on('close', ({ code }) => {
        if (clients.get(identity) === client) clients.delete(identity);
        emit('disconnected', { identity, code });
    });

    for (const [action, answer] of Object.entries(protocol === 'ocpp2.0.1' ? answers201 : answers)) {
        client.handle(action, ({ params }) => {
            emit('call', { identity, action, params });
            return answer(params);
        });
    }
    client.handle(({ method }) => {
        emit('unhandled', { identity, action: method });
        throw createRPCError('NotImplemented');
    });
});

async function control(request) {
    if (request.control === 'refuse') {
        refusing = true;
        await Promise.all([...clients.values()].map((client) => client.close({ code: 1001, force: true })));
    } else if (request.control === 'accept') {
        refusing = false;
        nextTransactionId = request.firstTransactionId ?? nextTransactionId;
    } else {
        emit('answer', { id: request.id, error: { code: 'BadRequest', message: `unknown control ${request.control}` } });
        return;
    }
    emit('answer', { id: request.id, result: {} });
}

async function sendCall(request) {
    const client = clients.get(request.identity);
    if (!client) {
        emit('answer', { id: request.id, error: { code: 'NotConnected', message: `${request.identity} is not connected` } });
        return;
    }
    try {
        const result = await client.call(request.action, request.params || {});
        emit('answer', { id: request.id, result });
    } catch (error) {
        emit('answer', { id: request.id, error: describeError(error) });
    }
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (!line.trim()) return;
    let request;
    try {
        request = JSON.parse(line);
    } catch (error) {
        emit('answer', { id: null, error: { code: 'BadRequest', message: `not JSON: ${line}` } });
        return;
    }
    if (request.control) control(request); else sendCall(request);
}).on('close', async () => {
    await server.close({ force: true });
    process.exit(0);
});

if (settings.tls) {
    // wss:// (security profiles 2 and 3): Node's own TLS stack; requireClientCertificate for profile 3
    const options = {
        cert: fs.readFileSync(settings.tls.cert), key: fs.readFileSync(settings.tls.key),
        ca: fs.readFileSync(settings.tls.ca), minVersion: settings.tls.minVersion || 'TLSv1.2',
        maxVersion: settings.tls.maxVersion || 'TLSv1.3',
        // a CSMS stuck on TLS 1.0/1.1 (the station must refuse it) needs OpenSSL's lowest security level
        ...(settings.tls.ciphers ? { ciphers: settings.tls.ciphers } : {}),
        // requestClientCertificate: ask for one but let profile 2 stations (none) in too
        requestCert: Boolean(settings.tls.requireClientCertificate || settings.tls.requestClientCertificate),
        rejectUnauthorized: Boolean(settings.tls.requireClientCertificate),
    };
    const httpsServer = https.createServer(options, (request, response) => {
        response.writeHead(404).end();
    });
    httpsServer.on('upgrade', server.handleUpgrade);
    httpsServer.on('tlsClientError', (error) => emit('tls_error', { message: String(error.message || error) }));
    httpsServer.listen(0, '127.0.0.1', () => emit('listening', { port: httpsServer.address().port }));
} else {
    server.listen(0, '127.0.0.1').then((httpServer) => {
        emit('listening', { port: httpServer.address().port });
    });
}
