package main

import (
	"fmt"
	"os"
)

// runAuditVerify implements `pdp audit verify`.
func runAuditVerify(args []string) int {
	fmt.Fprintln(os.Stderr, "pdp audit verify: not built yet")
	return 2
}
