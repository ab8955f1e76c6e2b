# Baseline for the JWT scenario on OPA's own server: the token is verified
# in Rego with io.jwt.decode_verify, and the verified claims become
# input.identity for the shipped policy, as the PDP's token step does.
# The key and the expected issuer and audience are in
# data.pdp.bench_jwt_key, which the harness writes next to this file.
package pdp.bench_jwt

import data.pdp.authz

key := data.pdp.bench_jwt_key

claims := payload if {
	[valid, _, payload] := io.jwt.decode_verify(input.token, {
		"cert": key.jwks,
		"iss": key.issuer,
		"aud": key.audience,
	})
	valid
}

identity := {
	"verified": true,
	"method": "jwt",
	"issuer": claims.iss,
	"subject": claims.sub,
	"audience": [claims.aud],
	"scopes": split(claims.scope, " "),
	"tenant": claims.tenant,
	"claims": claims,
}

decision := d if {
	d := authz.decision with input as object.union(input.request, {"identity": identity})
}
