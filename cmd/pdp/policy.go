package main

import (
	"fmt"
	"os"
)

// runPolicyTest implements `pdp policy test`.
func runPolicyTest(args []string) int {
	fmt.Fprintln(os.Stderr, "pdp policy test: not built yet")
	return 2
}
