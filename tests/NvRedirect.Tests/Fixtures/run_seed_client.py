# Runs the seed's dp client (the script given as the first argument) exactly as it is, with one redirection: the
# script connects to its fixed path /tmp/dp_listen.sock, and this wrapper sends that connect() to the path in
# $DP_SERVER_PATH instead, so tests can run their own daemon on a unique socket without touching the script.
# (A copy with DP_SERVER_PATH rewritten would also work, but then the code that runs is no longer the checked-in,
# seed-verified file.)
import os
import runpy
import socket
import sys

SEED_PATH = '/tmp/dp_listen.sock'
TARGET = os.environ['DP_SERVER_PATH']


class RedirectedSocket(socket.socket):
    def connect(self, address):
        if address != SEED_PATH:
            raise RuntimeError('the seed script connected to %r, not to %r' % (address, SEED_PATH))
        return super().connect(TARGET)


socket.socket = RedirectedSocket
runpy.run_path(sys.argv[1], run_name='__main__')
