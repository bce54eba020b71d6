package catalog

import (
	"bytes"
	"testing"
)

// FuzzDecode: no record panics the decoder, and an accepted record
// survives an encode and decode unchanged.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"format":1,"id":"20261124T214842Z","status":"DONE","begin_lsn":"0/2000028","tags":{"a":"b"}}`))
	f.Add([]byte(`{"format":99}`))
	f.Add([]byte(`{"id":`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		enc, err := Encode(b)
		if err != nil {
			return // a decoded record may still fail Encode's checks
		}
		again, err := Decode(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("a record gbc encoded does not decode: %v\n%s", err, enc)
		}
		// Compared as encoded: nil and empty lists or maps are one thing
		// in a record.
		enc2, err := Encode(again)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("record changed through decode and encode (%v):\n%s\n%s", err, enc, enc2)
		}
	})
}
