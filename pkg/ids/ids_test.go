package ids

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		wantCh  string
		wantErr bool
	}{
		{in: "5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7e", wantCh: "5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7e"},
		{in: "5D6A1C3E-4C1B-4B0E-9A7A-2B1F0F9C8D7E", wantCh: "5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7e"},
		{in: "5d6a1c3e4c1b4b0e9a7a2b1f0f9c8d7e", wantCh: "5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7e"},
		{in: "", wantErr: true},
		{in: "not-a-uuid", wantErr: true},
		{in: "5d6a1c3e_4c1b-4b0e-9a7a-2b1f0f9c8d7e", wantErr: true},
		{in: "5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7g", wantErr: true},
		{in: "{5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7}", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ch, err := ParseChannelID(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseChannelID(%q) err = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && ch.String() != tt.wantCh {
				t.Fatalf("ParseChannelID(%q) = %s, want %s", tt.in, ch, tt.wantCh)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	u := NewUAID()
	if len(u.String()) != 32 {
		t.Fatalf("uaid %q is not 32 hex digits", u)
	}
	back, err := ParseUAID(u.String())
	if err != nil || back != u {
		t.Fatalf("ParseUAID(%s) = %s, %v", u, back, err)
	}
	c := NewChannelID()
	if c == NewChannelID() {
		t.Fatal("two random channel ids are equal")
	}
	if c.String()[14] != '4' {
		t.Fatalf("channel id %s is not a version 4 UUID", c)
	}
}

func FuzzParseChannelID(f *testing.F) {
	f.Add("5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7e")
	f.Add("5d6a1c3e4c1b4b0e9a7a2b1f0f9c8d7e")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseChannelID(s)
		if err != nil {
			return
		}
		again, err := ParseChannelID(c.String())
		if err != nil || again != c {
			t.Fatalf("canonical form %q does not parse back", c)
		}
	})
}
