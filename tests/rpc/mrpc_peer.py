"""Test peer run under msgpack-rpc-python 0.4.1 (tornado 4.5, msgpack-python 0.5.6) in its own venv.

    python mrpc_peer.py server            prints "PORT <n>" then serves until stdin closes
    python mrpc_peer.py client <port>     runs a fixed script of calls against a server, prints one JSON
                                          line per step

Not imported by the test suite (it runs in another interpreter with other packages).
"""

import json
import sys
import threading

import msgpackrpc


def text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


class Handlers:
    def __init__(self):
        self.notes = []

    def add(self, a, b):
        return a + b

    def echo(self, value):
        return value

    def fail(self, message):
        raise ValueError(text(message))

    def note(self, value):  # called as a notification by the everpy client
        self.notes.append(text(value))

    def notes_seen(self):
        return self.notes


def serve():
    server = msgpackrpc.Server(Handlers())
    server.listen(msgpackrpc.Address("127.0.0.1", 0))
    port = server._listeners[0]._mp_server._sockets  # tornado keeps {fd: socket}
    port = next(iter(port.values())).getsockname()[1]
    print("PORT", port, flush=True)

    def stop_on_stdin_close():
        sys.stdin.read()
        server._loop._ioloop.add_callback(server.stop)

    threading.Thread(target=stop_on_stdin_close, daemon=True).start()
    server.start()


def run_client(port):
    client = msgpackrpc.Client(msgpackrpc.Address("127.0.0.1", port), timeout=5)

    def step(name, method, *args):
        try:
            result = client.call(method, *args)
            out = {"step": name, "result": to_json(result)}
        except msgpackrpc.error.RPCError as exc:
            out = {"step": name, "error": to_json(exc.args[0])}
        print(json.dumps(out), flush=True)

    step("add", "add", 20, 22)
    step("echo_map", "echo", {"a": [1, 2.5, None, True], "b": "ü"})
    step("echo_bin", "echo", b"\x00\xff")
    step("unknown", "no_such_method")
    step("fail", "fail", "boom")
    client.notify("note", "hello")
    step("notes", "notes_seen")
    client.close()


def to_json(value):
    # msgpack-python 0.5 (encoding=None) returns every string as bytes; text is told apart by decoding
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"bytes": value.hex()}
    if isinstance(value, dict):
        return {text(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve()
    else:
        run_client(int(sys.argv[2]))
