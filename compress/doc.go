// Package compress holds the streaming codecs (zstd, lz4, gzip, snappy and
// none), chosen by name and recognised by an object's extension, so that a
// reader never guesses how an object was written.
package compress
