// Command pdp is the policy decision point: it serves decisions to gateways
// and services, verifies audit chains and runs policy tests.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: pdp <command> [arguments]

commands:
  serve [--config FILE]          run the decision service
  audit verify [--key PUB] FILE... check audit chains
  policy test [DIR]              run the Rego tests of a bundle directory
  version                        print the version
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:])
	case "audit":
		if len(args) < 2 || args[1] != "verify" {
			fmt.Fprint(os.Stderr, usage)
			return 2
		}
		return runAuditVerify(args[2:])
	case "policy":
		if len(args) < 2 || args[1] != "test" {
			fmt.Fprint(os.Stderr, usage)
			return 2
		}
		return runPolicyTest(args[2:])
	case "version":
		fmt.Println(version)
		return 0
	case "-h", "--help", "help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "pdp: unknown command %q\n\n%s", args[0], usage)
	return 2
}
