package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
)

// preRecord is a decision record encoded in its canonical form by the
// caller's goroutine, except for the two chain members that only the
// writer can fill in: seq and prev_hash. The writer then only splices those in,
// hashes and writes, so the encoding work of concurrent decisions runs in
// parallel instead of in the writer's serial loop.
type preRecord struct {
	// fields are the record's fields without the chain members, kept for
	// the Redis stream copy.
	fields map[string]any
	// members are the canonical `"key":value` members in RFC 8785 key
	// order, with nil at the positions of seq and prev_hash.
	members [][]byte
	seqAt   int
	prevAt  int
}

// encodeRecord encodes f's members in canonical key order, leaving slots
// for seq and prev_hash.
func encodeRecord(f map[string]any) (*preRecord, error) {
	keys := make([]string, 0, len(f)+2)
	for k := range f {
		keys = append(keys, k)
	}
	keys = append(keys, fieldSeq, fieldPrevHash)
	sort.Slice(keys, func(i, j int) bool { return lessUTF16(keys[i], keys[j]) })

	p := &preRecord{fields: f, members: make([][]byte, len(keys))}
	for i, k := range keys {
		switch k {
		case fieldSeq:
			p.seqAt = i
			continue
		case fieldPrevHash:
			p.prevAt = i
			continue
		}
		m, err := appendString(make([]byte, 0, 32), k)
		if err != nil {
			return nil, err
		}
		m = append(m, ':')
		if m, err = appendCanonical(m, f[k]); err != nil {
			return nil, err
		}
		p.members[i] = m
	}
	return p, nil
}

// seal appends the record to dst as one line with seq and prevHash filled
// in, byte for byte what sealRecord writes for the same fields, and
// returns its hash. scratch is reused space for the hashed body.
func (p *preRecord) seal(dst []byte, seq uint64, prevHash string, scratch []byte) (line []byte, hash string, body []byte) {
	body = scratch[:0]
	body = append(body, '{')
	for i, m := range p.members {
		if i > 0 {
			body = append(body, ',')
		}
		switch i {
		case p.seqAt:
			body = append(body, `"seq":`...)
			body = strconv.AppendUint(body, seq, 10)
		case p.prevAt:
			// A hash is lowercase hex, or empty for the first record, so
			// it needs no escaping.
			body = append(body, `"prev_hash":"`...)
			body = append(body, prevHash...)
			body = append(body, '"')
		default:
			body = append(body, m...)
		}
	}
	body = append(body, '}')
	sum := sha256.Sum256(body)
	hash = hex.EncodeToString(sum[:])

	dst = append(dst, body[:len(body)-1]...)
	dst = append(dst, `,"hash":"`...)
	dst = append(dst, hash...)
	dst = append(dst, "\"}\n"...)
	return dst, hash, body
}
