"""A fault-injecting TCP proxy for one peering (the kernel here has no netem): listens on
LISTEN_HOST:LISTEN_PORT in the dialing node's namespace and forwards to TARGET_HOST:TARGET_PORT.

Commands on stdin: `delay MS` holds every chunk for that long in each direction (a slow path),
`reset` closes every connection at once, without a goodbye (a path that drops the connection),
`normal` forwards at full speed again. Prints `ready` once it listens.
"""

import socket
import sys
import threading
import time

state = {"delay": 0.0}
conns = []
lock = threading.Lock()


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if state["delay"]:
                time.sleep(state["delay"])
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.close()
        except OSError:
            pass


def serve(listener, target):
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection(target)
        except OSError:
            client.close()
            continue
        with lock:
            conns.extend([client, upstream])
        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()


def main():
    listen_host, listen_port, target_host, target_port = sys.argv[1:5]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((listen_host, int(listen_port)))
    listener.listen(16)
    threading.Thread(target=serve, args=(listener, (target_host, int(target_port))), daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "delay":
            state["delay"] = float(parts[1]) / 1000.0
        elif parts[0] == "normal":
            state["delay"] = 0.0
        elif parts[0] == "reset":
            with lock:
                for s in conns:
                    try:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        s.close()
                    except OSError:
                        pass
                conns.clear()
        print("ok", flush=True)


if __name__ == "__main__":
    main()
