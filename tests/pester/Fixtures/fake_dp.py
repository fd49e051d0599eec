# A fake datapath for the error tests: binds PATH and answers every datagram with a reply whose header lies about
# its length (what a broken or foreign daemon might send), until it has answered COUNT datagrams or 60 s passed.
# Usage: python3 fake_dp.py PATH COUNT
import os
import socket
import sys

path, count = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o600)
sock.settimeout(60)
print('ready', flush=True)
try:
    for _ in range(count):
        data, sender = sock.recvfrom(65536)
        if sender:
            sock.sendto(b'\x03\x00\x00\x99\x00\x00', sender)
finally:
    sock.close()
    os.unlink(path)
