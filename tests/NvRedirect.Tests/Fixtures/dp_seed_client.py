import socket
import json
DP_SERVER_PATH = '/tmp/dp_listen.sock'
SOCK = None
def connect_dp():
    global SOCK
    if SOCK:
        return SOCK
    socket_family = socket.AF_UNIX
    socket_type = socket.SOCK_DGRAM
    sock = socket.socket(socket_family, socket_type)
    sock.connect(DP_SERVER_PATH)
    SOCK = sock
    print("dp connected")
    return sock
def send_msg(msg):
    sock = connect_dp()
    sock.sendall(json.dumps(msg).encode())
    # data = sock.recv(1024)
    # print("receive data:", data)
    print('send msg: %s success' % msg)
def add_srvc_port():
    data = {
        "iface": "vth",
        "jumboframe": False
    }
    send_msg({'ctrl_add_srvc_port': data})
def add_internal_net():
    data = {
        "flag": 3,
        "subnet_addr": [
            {"ip": "172.17.0.0", "mask": "255.255.0.0"},
            {"ip": "179.20.23.0", "mask": "255.255.255.0"},
            {"ip": "10.10.10.0", "mask": "255.255.255.0"},
            {"ip": "172.20.166.0", "mask": "255.255.255.0"},
            {"ip": "10.10.10.66", "mask": "255.255.255.0", "iptype": "devip"},
            {"ip": "10.10.10.88", "mask": "255.255.255.0", "iptype": "devip"},
        ]
    }
    send_msg({'ctrl_cfg_internal_net': data})
def add_mac():
    data = {
        "iface": "vth",
        "mac": "1a:27:f3:87:3a:27",
        "ucmac": "4e:65:75:56:00:b4",
        "bcmac": "ff:ff:ff:00:00:b4",
        "oldmac": "",
        "pmac": "",
        "pips": None,
    }
    send_msg({'ctrl_add_mac': data})
def cfg_mac():
    data = {
        "tap": False,
        "macs": ["1a:27:f3:87:3a:27"],
    }
    send_msg({'ctrl_cfg_mac': data})
add_internal_net()
add_srvc_port()
add_mac()
cfg_mac()
