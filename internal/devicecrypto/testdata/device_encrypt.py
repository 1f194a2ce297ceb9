"""Encrypts a message as a device using python3-cryptography does.

usage: device_encrypt.py MINUTE PADDING:KEY_BYTES... < public-key.pem
PADDING: oaep-sha256, oaep-sha1, oaep-sha256-mgf1-sha1 or pkcs1v15.
Reads the plaintext from the environment variable PLAINTEXT, appends
" PADDING" to it, and prints one JSON envelope per PADDING:KEY_BYTES, one
per line (one process for all, as starting Python is the slow part).
"""
import base64
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

minute = int(sys.argv[1])
public_key = serialization.load_pem_public_key(sys.stdin.buffer.read())


def envelope(mode, key_bytes):
    plaintext = (os.environ["PLAINTEXT"] + " " + mode).encode("utf-8")
    if mode == "pkcs1v15":
        wrap = rsa_padding.PKCS1v15()
    else:
        label_hash = {"oaep-sha256": hashes.SHA256(), "oaep-sha1": hashes.SHA1(),
                      "oaep-sha256-mgf1-sha1": hashes.SHA256()}[mode]
        mgf_hash = hashes.SHA1() if mode == "oaep-sha256-mgf1-sha1" else label_hash
        wrap = rsa_padding.OAEP(mgf=rsa_padding.MGF1(algorithm=mgf_hash), algorithm=label_hash, label=None)
    key = os.urandom(key_bytes)
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    return json.dumps({
        "encryptedKey": base64.b64encode(public_key.encrypt(key, wrap)).decode(),
        "iv": base64.b64encode(iv).decode(),
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "minute": minute,
    })


for job in sys.argv[2:]:
    mode, key_bytes = job.split(":")
    print(envelope(mode, int(key_bytes)))
