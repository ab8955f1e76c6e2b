package pdp.authz_test

import data.pdp.authz

# Inputs in the shape the PDP builds for each front door.

gateway(method, segments, identity) := {
	"attributes": {"request": {"http": {"method": method, "path": concat("/", ["", concat("/", segments)])}}},
	"parsed_path": segments,
	"identity": identity,
}

anonymous(method, segments) := {
	"attributes": {"request": {"http": {"method": method, "path": concat("/", ["", concat("/", segments)])}}},
	"parsed_path": segments,
}

token(roles, scopes, tenant) := {
	"verified": true,
	"method": "jwt",
	"subject": "alice",
	"scopes": scopes,
	"tenant": tenant,
	"claims": {"roles": roles},
}

authzen(roles, subject_tenant, action, resource_tenant) := {
	"subject": {"type": "user", "id": "alice", "properties": {"roles": roles, "tenant": subject_tenant}},
	"action": {"name": action},
	"resource": {"type": "document", "id": "d-1", "properties": {"tenant": resource_tenant}},
}

billing_message := {
	"verified": true,
	"id": "msg-1",
	"sender": "billing",
	"scope": "payments:notify",
	"tenant": "t-42",
	"replay": "fresh",
}

callback(path, message) := {
	"attributes": {"request": {"http": {"method": "POST", "path": "/callbacks/payments"}}},
	"parsed_path": path,
	"message": message,
}

ops_message := {
	"verified": true,
	"id": "msg-2",
	"sender": "ops",
	"scope": "control:rotate-keys",
	"tenant": "t-1",
}

ops_mtls := {
	"verified": true,
	"method": "mtls",
	"spiffe_id": "spiffe://example.test/ns/ops/sa/controller",
}

control(message, identity) := {
	"attributes": {"request": {"http": {"method": "POST", "path": "/control/rotate-keys"}}},
	"parsed_path": ["control", "rotate-keys"],
	"message": message,
	"identity": identity,
}

# Decision shape.

test_decision_has_envoy_shape if {
	d := authz.decision with input as gateway("GET", ["tenants", "t-1", "docs"], token(["reader"], [], "t-1"))
	d.allowed == true
	d.http_status == 200
	d.headers == {"x-authz-subject": "alice", "x-authz-tenant": "t-1"}
	d.reasons == []
}

test_allow_mirrors_decision if {
	authz.allow with input as gateway("GET", ["docs"], token(["reader"], [], "t-1"))
	not authz.allow with input as gateway("DELETE", ["docs"], token(["reader"], [], "t-1"))
}

# Roles and scopes.

test_reader_role_can_read if {
	authz.decision.allowed with input as gateway("GET", ["docs", "1"], token(["reader"], [], "t-1"))
}

test_reader_role_cannot_write if {
	d := authz.decision with input as gateway("POST", ["docs"], token(["reader"], [], "t-1"))
	d.allowed == false
	d.http_status == 403
	d.reasons == ["action_not_granted"]
}

test_editor_role_can_write if {
	authz.decision.allowed with input as gateway("PUT", ["docs", "1"], token(["editor"], [], "t-1"))
}

test_write_scope_grants_write if {
	authz.decision.allowed with input as gateway("PATCH", ["docs", "1"], token([], ["api:write"], "t-1"))
}

test_read_scope_denies_delete if {
	not authz.decision.allowed with input as gateway("DELETE", ["docs", "1"], token([], ["api:read"], "t-1"))
}

test_unknown_method_denied if {
	not authz.decision.allowed with input as gateway("TRACE", ["docs"], token(["admin"], [], "t-1"))
}

test_anonymous_api_request_gets_401 if {
	d := authz.decision with input as anonymous("GET", ["docs"])
	d.allowed == false
	d.http_status == 401
	d.headers["www-authenticate"] == `Bearer realm="pdp"`
}

# Public paths.

test_public_get_needs_no_identity if {
	d := authz.decision with input as anonymous("GET", ["public", "assets", "logo.png"])
	d.allowed == true
	d.headers == {}
}

test_public_head_allowed if {
	authz.decision.allowed with input as anonymous("HEAD", ["public", "index.html"])
}

test_public_post_denied if {
	d := authz.decision with input as anonymous("POST", ["public", "upload"])
	d.allowed == false
	d.reasons == ["no_rule_allows"]
}

test_path_starting_like_public_is_not_public if {
	not authz.decision.allowed with input as anonymous("GET", ["publicity"])
}

# Admin path segment.

test_admin_segment_needs_admin_role if {
	d := authz.decision with input as gateway("GET", ["tenants", "t-1", "admin", "users"], token(["editor"], [], "t-1"))
	d.allowed == false
	d.reasons == ["admin_role_required"]
}

test_admin_segment_allowed_for_admin if {
	authz.decision.allowed with input as gateway("GET", ["tenants", "t-1", "admin", "users"], token(["admin"], [], "t-1"))
}

test_admin_segment_under_public_needs_admin_role if {
	not authz.decision.allowed with input as anonymous("GET", ["public", "admin"])
}

# Tenant isolation.

test_other_tenant_path_denied if {
	d := authz.decision with input as gateway("GET", ["tenants", "t-2", "docs"], token(["admin"], [], "t-1"))
	d.allowed == false
	d.reasons == ["tenant_mismatch"]
}

test_tenant_path_without_subject_tenant_denied if {
	d := authz.decision with input as gateway("GET", ["tenants", "t-1", "docs"], token(["reader"], [], null))
	d.allowed == false
	"tenant_missing" in d.reasons
}

test_authzen_same_tenant_allowed if {
	d := authz.decision with input as authzen(["reader"], "t-1", "read", "t-1")
	d.allowed == true
	d.headers["x-authz-subject"] == "alice"
}

test_authzen_other_tenant_denied if {
	d := authz.decision with input as authzen(["reader"], "t-1", "read", "t-2")
	d.allowed == false
	d.http_status == 403
	d.reasons == ["tenant_mismatch"]
}

test_authzen_action_not_granted if {
	not authz.decision.allowed with input as authzen(["reader"], "t-1", "delete", "t-1")
}

test_authzen_admin_action_needs_admin if {
	not authz.decision.allowed with input as authzen(["editor"], "t-1", "admin", "t-1")
	authz.decision.allowed with input as authzen(["admin"], "t-1", "admin", "t-1")
}

# Callbacks: a sender's own scopes and tenants only.

test_callback_from_sender_allowed if {
	d := authz.decision with input as callback(["callbacks", "payments"], billing_message)
	d.allowed == true
	d.headers["x-authz-subject"] == "billing"
}

test_callback_unsigned_denied if {
	d := authz.decision with input as callback(["callbacks", "payments"], object.union(billing_message, {"verified": false}))
	d.allowed == false
	d.reasons == ["message_unverified"]
}

test_callback_without_message_denied if {
	d := authz.decision with input as anonymous("POST", ["callbacks", "payments"])
	d.allowed == false
	"message_unverified" in d.reasons
}

test_callback_scope_of_other_sender_denied if {
	msg := object.union(billing_message, {"scope": "control:rotate-keys"})
	d := authz.decision with input as callback(["callbacks", "payments"], msg)
	d.allowed == false
	d.reasons == ["scope_not_allowed_for_sender", "scope_not_allowed_on_route"]
}

test_callback_scope_not_for_route_denied if {
	d := authz.decision with input as callback(["callbacks", "shipping"], billing_message)
	d.reasons == ["scope_not_allowed_on_route"]
}

test_callback_foreign_tenant_denied if {
	msg := object.union(billing_message, {"tenant": "t-1"})
	d := authz.decision with input as callback(["callbacks", "payments"], msg)
	d.reasons == ["tenant_not_allowed_for_sender"]
}

test_callback_unknown_sender_denied if {
	msg := object.union(billing_message, {"sender": "mallory"})
	d := authz.decision with input as callback(["callbacks", "payments"], msg)
	"unknown_sender" in d.reasons
	not d.allowed
}

test_callback_unknown_route_denied if {
	d := authz.decision with input as callback(["callbacks", "refunds"], billing_message)
	"unknown_route" in d.reasons
	not d.allowed
}

# Control messages also need a verified transport identity of the sender.

test_control_with_mtls_of_sender_allowed if {
	authz.decision.allowed with input as control(ops_message, ops_mtls)
}

test_control_with_token_of_sender_allowed if {
	id := {"verified": true, "method": "jwt", "subject": "billing"}
	msg := object.union(billing_message, {"scope": "control:rotate-keys"})
	d := authz.decision with input as control(msg, id)

	# billing may not use the control scope, whatever its identity.
	d.reasons == ["scope_not_allowed_for_sender"]
}

test_control_without_identity_denied if {
	d := authz.decision with input as control(ops_message, null)
	d.allowed == false
	d.reasons == ["identity_required"]
}

test_control_with_unverified_identity_denied if {
	d := authz.decision with input as control(ops_message, object.union(ops_mtls, {"verified": false}))
	d.reasons == ["identity_required"]
}

test_control_with_identity_of_other_service_denied if {
	other := object.union(ops_mtls, {"spiffe_id": "spiffe://example.test/ns/billing/sa/sender"})
	d := authz.decision with input as control(ops_message, other)
	d.reasons == ["identity_not_bound_to_sender"]
}

# A direct-API caller cannot add roles or a tenant to a verified token.
test_subject_roles_ignored_with_verified_token if {
	input_doc := object.union(authzen(["admin"], "t-2", "admin", "t-2"), {
		"parsed_path": ["admin", "x"],
		"identity": token(["reader"], [], "t-1"),
	})
	d := authz.decision with input as input_doc
	not d.allowed
}

test_subject_roles_used_without_identity if {
	d := authz.decision with input as authzen(["reader"], "t-1", "read", "t-1")
	d.allowed
}
