// Package cloud is gbc's blob layer: it moves bytes to and from object
// stores (Amazon S3 and S3-compatible stores, Google Cloud Storage, Azure
// Blob Storage, and a local directory) behind the small Store interface.
//
// Open picks the provider from the URL scheme. file:// is built in; the
// SDK providers live in subpackages (s3, gcs, azure; providers links all
// three) that register themselves (Provider, Register), so that a binary
// can leave them out: the WAL front, cmd/gbc-wal, links none and starts in
// a third of the time. Providers classify their errors at the edge
// (NewError: ErrNotFound, ErrExists, ErrPermission, ErrTransient), each
// knowing its own SDK's error types; behaviour such as retries or a key
// prefix is added by wrapping one Store in another. Key naming belongs to
// package catalog, not here.
//
// Credentials never come from Options (they would show in ps); each
// provider uses its SDK's standard chain:
//
//   - s3://: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY(/AWS_SESSION_TOKEN),
//     AWS_PROFILE and the shared files, web identity, ECS/EC2 roles. The
//     region comes from Options.Region, AWS_REGION or the profile.
//   - gs://: GOOGLE_APPLICATION_CREDENTIALS, gcloud's application default
//     credentials, or the metadata server. An emulator is reached with
//     Options.EndpointURL or STORAGE_EMULATOR_HOST, without credentials.
//   - azblob://: AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT
//     with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or with nothing
//     else for DefaultAzureCredential (AZURE_CLIENT_ID/AZURE_TENANT_ID/...,
//     workload or managed identity, az login).
//   - file://: the process's own file permissions.
//
// Open is cheap (no network round trip) and returns the provider wrapped
// in a documented chain (bandwidth limit, prefix, retries, then the
// caller's Options.Layers); a process should open each store once and
// share it. As finds an optional capability under the wrappers.
//
// Put takes a Body, whose type says whether it can be read again
// (BytesBody, SectionBody) or not (OneShotBody): the retry wrapper replays
// the first kind and never the second mid-stream.
//
// A Put killed with its process can leave what no listing shows (S3
// multipart uploads, file:// temporary files): those providers implement
// the optional StaleSweeper, which SweepStale finds under the wrappers.
package cloud
