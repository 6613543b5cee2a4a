"""Print a free TCP port on 127.0.0.1 (bound once, then released). Stdlib only."""
import socket

if __name__ == "__main__":
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
