package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/authgate/pdp/pdp"
)

// Record types, the value of the "type" field.
const (
	TypeDecision   = "decision"
	TypeCheckpoint = "checkpoint"
)

// Field names every record carries.
const (
	fieldType     = "type"
	fieldSeq      = "seq"
	fieldTime     = "time"
	fieldInstance = "instance"
	fieldPrevHash = "prev_hash"
	fieldHash     = "hash"
)

// Checkpoint field names.
const (
	fieldRecordCount = "record_count"
	fieldHeadHash    = "head_hash"
	fieldKeyID       = "key_id"
	fieldSignature   = "signature"
)

// GenesisHash is the prev_hash of a chain's first record (seq 1).
var GenesisHash = strings.Repeat("0", sha256.Size*2)

// checkpointContext prefixes the signed bytes of a checkpoint, so a
// checkpoint signature cannot be replayed as a signature over anything else
// made with the same key.
const checkpointContext = "authgate-pdp audit checkpoint v1\n"

// timeFormat is RFC 3339 in UTC with nanoseconds, trailing zeros kept so
// every timestamp has the same length.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// decisionFields maps an audit event to record fields. Empty strings are
// left out. The message sequence is a decimal string because a uint64 may
// exceed 2^53, the largest integer JCS numbers carry exactly.
//
// TODO: a header allow-list would need the headers in pdp.AuditEvent; only
// the fields below are written.
func decisionFields(ev *pdp.AuditEvent, instance string, now time.Time) map[string]any {
	t := ev.Time
	if t.IsZero() {
		t = now
	}
	f := map[string]any{
		fieldType:     TypeDecision,
		fieldTime:     t.UTC().Format(timeFormat),
		fieldInstance: instance,
		"allow":       ev.Allow,
	}
	if ev.HTTPStatus != 0 {
		f["http_status"] = ev.HTTPStatus
	}
	if ev.HasSequence {
		f["message_sequence"] = strconv.FormatUint(ev.Sequence, 10)
	}
	strs := []struct{ key, value string }{
		{"decision_id", ev.DecisionID},
		{"subject", ev.Subject},
		{"issuer", ev.Issuer},
		{"spiffe_id", ev.SpiffeID},
		{"tenant", ev.Tenant},
		{"action", ev.Action},
		{"resource", ev.Resource},
		{"message_id", ev.MessageID},
		{"sender", ev.Sender},
		{"reason", string(ev.Reason)},
		{"route", ev.Route},
		{"front_door", ev.FrontDoor},
		{"bundle_revision", ev.BundleRevision},
		{"trace_id", ev.TraceID},
		{"input_digest", ev.InputDigest},
	}
	for _, s := range strs {
		if s.value != "" {
			// JCS needs valid Unicode; a request path can carry any bytes.
			f[s.key] = strings.ToValidUTF8(s.value, "\uFFFD")
		}
	}
	return f
}

// checkpointFields returns the unsigned fields of a checkpoint that follows
// the record with sequence number headSeq and hash headHash.
func checkpointFields(instance string, now time.Time, headSeq uint64, headHash, keyID string) map[string]any {
	return map[string]any{
		fieldType:        TypeCheckpoint,
		fieldTime:        now.UTC().Format(timeFormat),
		fieldInstance:    instance,
		fieldRecordCount: headSeq,
		fieldHeadHash:    headHash,
		fieldKeyID:       keyID,
	}
}

// sealRecord sets seq and prev_hash, computes the hash and returns the
// record as one line: the canonical JSON of the hashed fields with the hash
// added as the last member.
func sealRecord(f map[string]any, seq uint64, prevHash string) (line []byte, hash string, err error) {
	f[fieldSeq] = seq
	f[fieldPrevHash] = prevHash
	body, err := appendCanonical(make([]byte, 0, 512), f)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(body)
	hash = hex.EncodeToString(sum[:])

	line = append(body[:len(body)-1], `,"hash":"`...)
	line = append(line, hash...)
	line = append(line, "\"}\n"...)
	return line, hash, nil
}

// recordHash returns the hex SHA-256 of the canonical JSON of every field
// of rec except "hash".
func recordHash(rec map[string]any) (string, error) {
	hashed := make(map[string]any, len(rec))
	for k, v := range rec {
		if k != fieldHash {
			hashed[k] = v
		}
	}
	body, err := appendCanonical(nil, hashed)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:]), nil
}

// signedBytes returns what a checkpoint signature covers: the context
// string followed by the canonical JSON of every field except "signature"
// and "hash".
func signedBytes(rec map[string]any) ([]byte, error) {
	signed := make(map[string]any, len(rec))
	for k, v := range rec {
		if k != fieldHash && k != fieldSignature {
			signed[k] = v
		}
	}
	return appendCanonical([]byte(checkpointContext), signed)
}

// signCheckpoint adds the signature field to a checkpoint that already has
// its seq and prev_hash.
func signCheckpoint(f map[string]any, key ed25519.PrivateKey) error {
	msg, err := signedBytes(f)
	if err != nil {
		return err
	}
	f[fieldSignature] = base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))
	return nil
}

// verifyCheckpointSignature checks a checkpoint's signature and key id
// against pub.
func verifyCheckpointSignature(rec map[string]any, pub ed25519.PublicKey) error {
	keyID, _ := rec[fieldKeyID].(string)
	if want := KeyID(pub); keyID != want {
		return fmt.Errorf("checkpoint key_id %q does not match the verification key %q", keyID, want)
	}
	sigText, _ := rec[fieldSignature].(string)
	sig, err := base64.StdEncoding.DecodeString(sigText)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("checkpoint signature is not a base64 Ed25519 signature")
	}
	msg, err := signedBytes(rec)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, sig) {
		return errors.New("checkpoint signature is invalid")
	}
	return nil
}

// Checkpoint is a signed statement of a chain head, for anchoring outside
// the PDP.
type Checkpoint struct {
	Instance string `json:"instance"`
	// Seq is the checkpoint record's own sequence number.
	Seq uint64 `json:"seq"`
	// RecordCount is the number of records before the checkpoint, which is
	// also the sequence number of the head it signs.
	RecordCount uint64 `json:"record_count"`
	HeadHash    string `json:"head_hash"`
	// Hash is the checkpoint record's own hash.
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
	// Line is the checkpoint record exactly as written to the chain.
	Line []byte `json:"-"`
}
