package main

// runServe implements `pdp serve`.
func runServe(args []string) int {
	return 2
}
