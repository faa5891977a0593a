"""JOSE interop helper for test/sealing/jwcrypto-interop.test.ts, run with Debian's /usr/bin/python3 and
python3-jwcrypto (an independent JOSE implementation). Reads one JSON request on stdin, writes one JSON answer.

Operations:
  open:   {"op": "open", "jwe": <General JSON JWE text>, "keys": [<private JWK>...]} -> {"plaintexts": [str...]}
  verify: {"op": "verify", "token": <compact JWS>, "jwk": <public JWK>} -> {"header": {...}, "claims": {...}}
  seal:   {"op": "seal", "plaintext": str, "recipients": [{"jwk": <public JWK>, "alg": str, "kid": str}]}
          -> {"jwe": <General JSON JWE text>}
"""
import json
import sys

from jwcrypto import jwe, jwk, jws


def main():
    req = json.load(sys.stdin)
    op = req["op"]
    if op == "open":
        out = []
        for key in req["keys"]:
            token = jwe.JWE()
            token.deserialize(req["jwe"], key=jwk.JWK(**key))
            out.append(token.payload.decode("utf-8"))
        json.dump({"plaintexts": out}, sys.stdout)
    elif op == "verify":
        token = jws.JWS()
        token.deserialize(req["token"])
        token.verify(jwk.JWK(**req["jwk"]), alg="ES256")
        json.dump({"header": token.jose_header, "claims": json.loads(token.payload)}, sys.stdout)
    elif op == "seal":
        token = jwe.JWE(req["plaintext"].encode("utf-8"), protected=json.dumps({"enc": "A256GCM"}))
        for r in req["recipients"]:
            token.add_recipient(jwk.JWK(**r["jwk"]), header=json.dumps({"alg": r["alg"], "kid": r["kid"]}))
        json.dump({"jwe": token.serialize(compact=False)}, sys.stdout)
    else:
        raise SystemExit("unknown op " + op)


main()
