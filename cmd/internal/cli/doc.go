// Package cli holds the conventions every gbc command shares: the multi-call
// dispatch on the program name, the store and compression flags (each also
// read from a GBC_* environment variable), --version, -v/-q, and the mapping
// of errors to one line on stderr and a documented exit code.
package cli
