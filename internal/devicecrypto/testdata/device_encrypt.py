"""Encrypts a message as a device using python3-cryptography does.

usage: device_encrypt.py PADDING KEY_BYTES MINUTE < public-key.pem
PADDING: oaep-sha256, oaep-sha1, oaep-sha256-mgf1-sha1 or pkcs1v15.
Reads the plaintext from the environment variable PLAINTEXT and prints the
JSON envelope.
"""
import base64
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

mode, key_bytes, minute = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
public_key = serialization.load_pem_public_key(sys.stdin.buffer.read())
plaintext = os.environ["PLAINTEXT"].encode("utf-8")

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

print(json.dumps({
    "encryptedKey": base64.b64encode(public_key.encrypt(key, wrap)).decode(),
    "iv": base64.b64encode(iv).decode(),
    "ciphertext": base64.b64encode(ciphertext).decode(),
    "minute": minute,
}))
