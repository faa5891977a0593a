"""Attestation-token check of the independent proof-bundle verifier (test/interop/independentVerifier.ts), with
Debian's /usr/bin/python3 and python3-jwcrypto (an independent JOSE implementation), written from
docs/proof-bundle.md ("Attestation token" and the `attestation` row of "Verification").

Reads one JSON request on stdin: {"requests": [{"token", "jwks", "now", "tolerance", "expected"}...]} where `now` is
the verification time in Unix seconds, `tolerance` the allowed clock skew in seconds and `expected` the claim values
{cryptletId, codeHash, resultId, inputHash, outputHash, aud, evidenceHash?, iss?, attestationProof?} taken from the
bundle. `attestationProof` is {evidenceHash, root} when the bundle carries one ("Batch attestation token"): the leaf's
evidenceHash as carried and the root its Merkle proof reaches (computed by the TypeScript side with viem: Python here
has no keccak256). Writes {"answers": [{"ok", "reason", "kid"?}...]}, one per request, in order. Never raises for a
bad token (the reason says why).
"""
import json
import re
import sys

from jwcrypto import jwk, jws
from jwcrypto.common import base64url_decode

TYP = "cryptlet-attestation+jwt"
BATCH_TYP = "cryptlet-batch-attestation+jwt"
# \Z, not $: `$` also matches before a trailing newline, which a bytes32 must not have.
BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}\Z")
# The leaf values of a batch token's result, taken from the bundle (docs/proof-bundle.md, "Batch attestation token").
LEAF_FROM_RESULT = ("resultId", "cryptletId", "codeHash", "inputHash", "outputHash")


class Refused(Exception):
    pass


def check(req):
    token = req["token"]
    parts = token.split(".")
    if len(parts) != 3:
        raise Refused("not a compact JWS")
    try:
        header = json.loads(base64url_decode(parts[0]))
    except Exception:
        raise Refused("header is not base64url JSON")
    if not isinstance(header, dict):
        raise Refused("header is not a JSON object")
    if header.get("alg") != "ES256":
        raise Refused("alg is not ES256")
    typ = header.get("typ")
    if typ not in (TYP, BATCH_TYP):
        raise Refused("typ is not %s or %s" % (TYP, BATCH_TYP))
    if "crit" in header:
        raise Refused("crit header not understood")
    kid = header.get("kid")
    keys = [k for k in req["jwks"].get("keys", []) if k.get("kid") == kid]
    if kid is None or len(keys) != 1:
        raise Refused("no JWKS key with kid %r" % (kid,))
    key_json = keys[0]
    if key_json.get("kty") != "EC" or key_json.get("crv") != "P-256":
        raise Refused("JWKS key is not EC P-256")
    if key_json.get("alg", "ES256") != "ES256" or key_json.get("use", "sig") != "sig":
        raise Refused("JWKS key is not an ES256 signing key")
    public = {m: key_json[m] for m in ("kty", "crv", "x", "y")}
    sig = jws.JWS()
    try:
        sig.deserialize(token)
        sig.verify(jwk.JWK(**public), alg="ES256")
    except Exception as e:
        raise Refused("bad signature (%s)" % type(e).__name__)
    try:
        claims = json.loads(sig.payload)
    except Exception:
        raise Refused("payload is not JSON")
    if not isinstance(claims, dict):
        raise Refused("claims are not a JSON object")

    # Required claims and their shapes (docs/proof-bundle.md, "Attestation token").
    for name in ("iss", "sub", "jti"):
        if not isinstance(claims.get(name), str):
            raise Refused("claim %s missing" % name)
    for name in ("iat", "exp"):
        if not isinstance(claims.get(name), (int, float)) or isinstance(claims.get(name), bool):
            raise Refused("claim %s missing" % name)
    expected = req["expected"]
    if typ == BATCH_TYP:
        claims = batch_result_claims(claims, expected)
    elif expected.get("attestationProof") is not None:
        raise Refused("attestationProof beside a per-result token")
    for name in ("cryptletId", "codeHash", "resultId"):
        if not isinstance(claims.get(name), str) or not BYTES32.match(claims[name]):
            raise Refused("claim %s missing or not bytes32" % name)
    runtime = claims.get("runtime")
    if not isinstance(runtime, dict) or not isinstance(runtime.get("version"), str) or not isinstance(
        runtime.get("buildHash"), str
    ):
        raise Refused("claim runtime {version, buildHash} missing")
    sandbox = claims.get("sandbox")
    if (
        not isinstance(sandbox, dict)
        or not isinstance(sandbox.get("engine"), str)
        or not isinstance(sandbox.get("engineVersion"), str)
        or not isinstance(sandbox.get("limits"), dict)
    ):
        raise Refused("claim sandbox {engine, engineVersion, limits} missing")
    platform = claims.get("platform")
    if not isinstance(platform, dict) or not isinstance(platform.get("type"), str):
        raise Refused("claim platform {type} missing")

    # Validity window at `now`: valid while now < exp (+ tolerance); nbf, when present, must be <= now (+ tolerance).
    now, tolerance = req["now"], req.get("tolerance", 0)
    if not claims["exp"] > now - tolerance:
        raise Refused("expired at now")
    if "nbf" in claims and not (isinstance(claims["nbf"], (int, float)) and claims["nbf"] <= now + tolerance):
        raise Refused("not yet valid (nbf)")

    # Claims against the bundle: hex case-insensitively; sub is the resultId too.
    for name in ("cryptletId", "codeHash", "resultId"):
        if claims[name].lower() != expected[name].lower():
            raise Refused("claim %s differs from the bundle's" % name)
    for name in ("inputHash", "outputHash"):
        if not isinstance(claims.get(name), str) or claims[name].lower() != expected[name].lower():
            raise Refused("claim %s differs from the bundle's" % name)
    if not isinstance(claims.get("aud"), str) or claims["aud"].lower() != expected["aud"].lower():
        raise Refused("claim aud differs from the bundle's consortiumId")
    if claims.get("inputFormat") not in (1, 2) or isinstance(claims.get("inputFormat"), bool):
        raise Refused("claim inputFormat is not 1 or 2")
    if claims["inputFormat"] == 2 and (
        not isinstance(claims.get("evidenceHash"), str) or not BYTES32.match(claims["evidenceHash"])
    ):
        raise Refused("claim evidenceHash missing or not bytes32")
    if expected.get("evidenceHash") is not None and (
        claims.get("evidenceHash") or ""
    ).lower() != expected["evidenceHash"].lower():
        raise Refused("claim evidenceHash differs from keccak256(JCS(evidence))")
    if claims["sub"].lower() != expected["resultId"].lower():
        raise Refused("claim sub differs from the bundle's resultId")
    if expected.get("iss") is not None and claims["iss"] != expected["iss"]:
        raise Refused("claim iss differs from the expected issuer")
    kind = "batch token of %s result(s), leaf proven, " % claims["batch"]["count"] if typ == BATCH_TYP else ""
    return {"ok": True, "reason": "ES256 %sby %s, claims match" % (kind, kid), "kid": kid}


def is_json_integer(value):
    """A JSON number with an integral value (1 and 1.0 alike, as JSON does not tell them apart); not a bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")) and value.is_integer()


def batch_result_claims(claims, expected):
    """The claims a batch token states of the bundle's result (docs/proof-bundle.md, "Batch attestation token").

    The token's `batch` is {root (bytes32), count (integer >= 1)} and its `sub` is the root; the bundle's leaf
    [result.resultId, cryptletId, codeHash, inputHash, outputHash, attestationProof.evidenceHash] with
    attestationProof.proof reaches batch.root (the root that leaf and proof reach is `expected.attestationProof.root`).
    The result's claims are then those leaf values, sub = resultId, with the token's batch-wide claims; they are
    checked against the bundle afterwards exactly as a per-result token's.
    """
    leaf = expected.get("attestationProof")
    if leaf is None:
        raise Refused("batch token without attestationProof")
    batch = claims.get("batch")
    if not isinstance(batch, dict):
        raise Refused("claim batch missing")
    root = batch.get("root")
    if not isinstance(root, str) or not BYTES32.match(root):
        raise Refused("claim batch.root missing or not bytes32")
    count = batch.get("count")
    if not is_json_integer(count) or count < 1:
        raise Refused("claim batch.count missing or not an integer >= 1")
    if claims["sub"].lower() != root.lower():
        raise Refused("claim sub differs from batch.root")
    if not isinstance(leaf.get("root"), str) or leaf["root"].lower() != root.lower():
        raise Refused("attestationProof does not reach the token's batch.root")
    result = dict(claims)
    for name in LEAF_FROM_RESULT:
        result[name] = expected[name]
    result["evidenceHash"] = leaf["evidenceHash"]
    result["sub"] = expected["resultId"]
    return result


def main():
    answers = []
    for req in json.load(sys.stdin)["requests"]:
        try:
            answers.append(check(req))
        except Refused as e:
            answers.append({"ok": False, "reason": str(e)})
    json.dump({"answers": answers}, sys.stdout)


main()
