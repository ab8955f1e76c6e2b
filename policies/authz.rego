# Example authorization policy for the PDP. One policy serves Envoy and
# NGINX (input.attributes, input.parsed_path, input.identity), signed
# backchannel messages (input.message) and direct AuthZEN callers
# (input.subject, input.action, input.resource). The role, scope, route and
# sender tables are in data.json under data.pdp.acl.
#
# A request is allowed when at least one grant applies and no deny reason
# does. Deny reasons are returned in decision.reasons.
package pdp.authz

acl := data.pdp.acl

# decision is the PDP entrypoint, in the result shape of OPA's Envoy plugin.
decision := {
	"allowed": allowed,
	"http_status": http_status,
	"headers": response_headers,
	"reasons": reasons,
}

# allow is the boolean form of the decision, for callers that want only that.
allow := allowed

default allowed := false

allowed if {
	count(grant) > 0
	count(deny) == 0
}

http_status := 200 if {
	allowed
} else := 401 if {
	not authenticated
} else := 403

reasons := sort(deny) if {
	count(deny) > 0
} else := ["no_rule_allows"] if {
	not allowed
} else := []

response_headers["x-authz-subject"] := subject_id if allowed

response_headers["x-authz-tenant"] := subject_tenant if allowed

response_headers["www-authenticate"] := `Bearer realm="pdp"` if http_status == 401

# ---------------------------------------------------------------------------
# Facts about the caller and the request.

http_method := input.attributes.request.http.method

# action is what the caller wants to do: derived from the HTTP method at a
# gateway, named by the caller on the direct API.
action := acl.method_actions[http_method]

action := input.action.name if not http_method

# Roles come from verified token claims. Only when no identity was verified
# do they come from the subject the calling service describes on the direct
# API, so a caller cannot add roles to a verified token.
roles contains role if some role in input.identity.claims.roles

roles contains role if {
	not input.identity.verified
	some role in input.subject.properties.roles
}

scopes contains scope if some scope in input.identity.scopes

granted_actions contains granted if {
	some role in roles
	some granted in acl.roles[role].actions
}

granted_actions contains granted if {
	some scope in scopes
	some granted in acl.scopes[scope]
}

authenticated if input.identity.verified == true

authenticated if input.message.verified == true

authenticated if {
	not input.attributes
	input.subject.id
}

subject_id := id if {
	id := input.identity.subject
} else := id if {
	id := input.subject.id
} else := id if {
	id := input.message.sender
}

# Tenants count only as non-empty strings, so a null or "" tenant never
# matches another.
subject_tenant := tenant if {
	tenant := input.identity.tenant
	valid_tenant(tenant)
} else := tenant if {
	not input.identity.verified
	tenant := input.subject.properties.tenant
	valid_tenant(tenant)
}

# The resource tenant is named by the direct API caller, or by the path
# /tenants/{tenant}/... at a gateway.
resource_tenant := tenant if {
	tenant := input.resource.properties.tenant
	valid_tenant(tenant)
} else := tenant if {
	input.parsed_path[0] == "tenants"
	tenant := input.parsed_path[1]
	valid_tenant(tenant)
}

valid_tenant(tenant) if {
	is_string(tenant)
	tenant != ""
}

# ---------------------------------------------------------------------------
# Route kinds, checked on the normalized path segments.

public_path if input.parsed_path[0] == "public"

backchannel_route := acl.backchannel_routes[concat("/", [input.parsed_path[0], input.parsed_path[1]])]

backchannel_path if input.parsed_path[0] in {"callbacks", "control"}

api_route if {
	not public_path
	not backchannel_path
}

# ---------------------------------------------------------------------------
# Grants.

# Read-only requests below /public need no identity.
grant contains "public_read" if {
	public_path
	http_method in acl.public_methods
}

grant contains "role_or_scope" if {
	api_route
	action in granted_actions
}

grant contains "backchannel" if backchannel_route

# ---------------------------------------------------------------------------
# Deny reasons. Each one overrides every grant.

deny contains "action_not_granted" if {
	api_route
	not action in granted_actions
}

deny contains "admin_role_required" if {
	"admin" in input.parsed_path
	not acl.admin_role in roles
}

deny contains "tenant_missing" if {
	resource_tenant
	not subject_tenant
}

deny contains "tenant_mismatch" if {
	subject_tenant != resource_tenant
}

deny contains "unknown_route" if {
	backchannel_path
	not backchannel_route
}

# A callback or control message must be signed, come from a known sender,
# and stay within that sender's own scopes and tenants.
deny contains "message_unverified" if {
	backchannel_path
	not input.message.verified == true
}

deny contains "unknown_sender" if {
	backchannel_path
	not acl.senders[input.message.sender]
}

deny contains "scope_not_allowed_for_sender" if {
	backchannel_path
	not input.message.scope in acl.senders[input.message.sender].scopes
}

deny contains "scope_not_allowed_on_route" if {
	backchannel_path
	not input.message.scope in backchannel_route.scopes
}

deny contains "tenant_not_allowed_for_sender" if {
	backchannel_path
	not input.message.tenant in acl.senders[input.message.sender].tenants
}

# A control message also needs a verified mTLS or token identity that
# belongs to the sender, so a leaked signing key alone cannot send one.
deny contains "identity_required" if {
	backchannel_route.kind == "control"
	not verified_transport_identity
}

deny contains "identity_not_bound_to_sender" if {
	backchannel_route.kind == "control"
	verified_transport_identity
	not identity_bound_to_sender
}

verified_transport_identity if {
	input.identity.verified == true
	input.identity.method in {"mtls", "jwt"}
}

identity_bound_to_sender if {
	input.identity.spiffe_id in acl.senders[input.message.sender].identities
}

identity_bound_to_sender if {
	input.identity.subject in acl.senders[input.message.sender].identities
}
