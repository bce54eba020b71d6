// Package e2e holds the end-to-end tests: real PostgreSQL clusters and real
// object-store servers (MinIO, Azurite, fake-gcs-server) started on
// 127.0.0.1 with free ports, and the gbc binaries run against them.
package e2e
