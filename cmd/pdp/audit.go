package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/authgate/pdp/audit"
)

const auditVerifyUsage = `usage: pdp audit verify [--key PUB] [--checkpoints FILE] [--partial] PATH...

Checks audit chains: every record's hash, the links between records and
files, gapless sequence numbers and checkpoint signatures. A PATH is an
audit file or a directory; a directory is checked as one chain per
instance, files given one by one as a single chain in the order given.
A checkpoints file is checked first, and a bad anchor in it is reported
against that file, not the chain. Exits 0 when every chain is intact, 1
on any integrity fault (in a chain or in the checkpoints file), 2 on bad
usage or an unreadable file.

options:
`

// runAuditVerify implements `pdp audit verify`.
func runAuditVerify(args []string) int {
	return auditVerify(args, os.Stdout, os.Stderr)
}

func auditVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pdp audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, auditVerifyUsage)
		fs.PrintDefaults()
	}
	keyFile := fs.String("key", "", "Ed25519 public key `file` (PEM, raw, hex or base64) "+
		"that checkpoint signatures must verify against; without it signatures are not checked")
	anchorFile := fs.String("checkpoints", "", "exported checkpoints `file`, checked first "+
		"(signatures need --key); the chain must contain each of its checkpoints, which "+
		"detects records cut from the end")
	partial := fs.Bool("partial", false, "accept a chain that does not start at seq 1 "+
		"(older files removed by retention)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}

	opts := audit.VerifyOptions{Partial: *partial}
	if *keyFile != "" {
		pub, err := audit.LoadPublicKey(*keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "pdp audit verify: %v\n", err)
			return 2
		}
		opts.PublicKey = pub
	}
	chains, err := chainsOf(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "pdp audit verify: %v\n", err)
		return 2
	}

	if *anchorFile != "" {
		anchors, err := audit.ReadCheckpoints(*anchorFile, opts.PublicKey)
		if err != nil {
			fmt.Fprintf(stderr, "pdp audit verify: %v\n", err)
			return 2
		}
		if anchors.Fault != nil {
			// The chains are not checked against a bad anchors file, so
			// that a forged anchor is never blamed on a good record.
			fmt.Fprintf(stdout, "FAIL %s\n", anchors.Fault)
			return 1
		}
		if !anchors.Authenticated {
			fmt.Fprintf(stdout, "WARNING: anchors in %s are unauthenticated: no --key given, "+
				"so only their hashes are checked\n", *anchorFile)
		}
		opts.Anchors = &anchors
	}
	return verifyChains(chains, opts, stdout, stderr)
}

// chain is one instance's files in chain order.
type chain struct {
	name  string
	files []string
}

// chainsOf expands directories into one chain per instance; plain files
// form one chain together, in the order given.
func chainsOf(paths []string) ([]chain, error) {
	var out []chain
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		byInstance, err := audit.ListChains(p)
		if err != nil {
			return nil, err
		}
		if len(byInstance) == 0 {
			return nil, fmt.Errorf("%s: no audit files (audit-*.jsonl)", p)
		}
		names := make([]string, 0, len(byInstance))
		for name := range byInstance {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			out = append(out, chain{name: name, files: byInstance[name]})
		}
	}
	if len(files) > 0 {
		out = append(out, chain{name: "files", files: files})
	}
	return out, nil
}

func verifyChains(chains []chain, opts audit.VerifyOptions, stdout, stderr io.Writer) int {
	code := 0
	for _, c := range chains {
		res, err := audit.Verify(c.files, opts)
		if err != nil {
			fmt.Fprintf(stderr, "pdp audit verify: %v\n", err)
			return 2
		}
		if res.Fault != nil {
			fmt.Fprintf(stdout, "FAIL %s\n", res.Fault)
			code = 1
			continue
		}
		printResult(stdout, res, opts)
	}
	return code
}

func printResult(w io.Writer, res audit.Result, opts audit.VerifyOptions) {
	fmt.Fprintf(w, "ok instance %s: %d records (%d decisions, %d checkpoints) in %d files, "+
		"seq %d to %d, head hash %s\n", res.Instance, res.Records, res.Decisions,
		res.Checkpoints, res.Files, res.FirstSeq, res.HeadSeq, res.HeadHash)
	if opts.PublicKey != nil {
		fmt.Fprintf(w, "  %d checkpoint signatures verified with key %s\n",
			res.SignaturesChecked, audit.KeyID(opts.PublicKey))
	} else if res.SignaturesUnchecked > 0 {
		fmt.Fprintf(w, "  NOTE: %d checkpoint signatures not verified: no --key given\n",
			res.SignaturesUnchecked)
	}
	if opts.Anchors != nil {
		fmt.Fprintf(w, "  %d anchored checkpoints from %s found in the chain\n",
			res.AnchorsMatched, opts.Anchors.Path)
	}
	if !res.EndsWithCheckpoint {
		fmt.Fprintln(w, "  NOTE: the chain does not end with a checkpoint "+
			"(the writer is running or did not close cleanly)")
	}
}
