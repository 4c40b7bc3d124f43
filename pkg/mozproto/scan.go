package mozproto

// scanClientMessage parses the frames user agents send most (ack above all, one per
// message delivered; register, ping) without reflection: encoding/json was a tenth
// of a gateway's CPU time. It takes only a plain subset of JSON: strings of
// printable ASCII without escapes, integers of up to nine digits, true and false,
// and each known key at most once with its own type. It reports false for anything
// else (escapes, other bytes, null, numbers with a fraction or exponent, unknown or
// repeated keys, broadcasts), and Parse then leaves the frame to encoding/json.
// What it accepts it sets m to exactly as encoding/json would; FuzzParse checks it.
func scanClientMessage(b []byte, m *ClientMessage) bool {
	s := scanner{b: b}
	if !s.object(func(key []byte) bool {
		switch string(key) {
		case "messageType":
			return s.field(fMessageType) && s.messageType(&m.Type)
		case "uaid":
			return s.field(fUAID) && s.str(&m.UAID)
		case "channelIDs":
			return s.field(fChannelIDs) && s.strings(&m.ChannelIDs)
		case "use_webpush":
			return s.field(fUseWebPush) && s.bool(&m.UseWebPush)
		case "min_urgency":
			return s.field(fMinUrgency) && s.str(&m.MinUrgency)
		case "channelID":
			return s.field(fChannelID) && s.str(&m.ChannelID)
		case "key":
			return s.field(fKey) && s.str(&m.Key)
		case "code":
			return s.field(fCode) && s.int(&m.Code)
		case "updates":
			return s.field(fUpdates) && s.updates(&m.Updates)
		case "version":
			return s.field(fVersion) && s.str(&m.Version)
		case "min":
			return s.field(fMin) && s.str(&m.Min)
		}
		return false
	}) {
		return false
	}
	s.space()
	return s.i == len(s.b)
}

// Bits of the keys an object had, to refuse a repeated one: encoding/json lets the
// last win, or merges, which is not worth copying here.
const (
	fMessageType = 1 << iota
	fUAID
	fChannelIDs
	fUseWebPush
	fMinUrgency
	fChannelID
	fKey
	fCode
	fUpdates
	fVersion
	fMin
)

// scanner reads b from i on.
type scanner struct {
	b []byte
	i int
	// seen are the keys of the object being read (an update's have their own).
	seen int
}

func (s *scanner) field(bit int) bool {
	if s.seen&bit != 0 {
		return false
	}
	s.seen |= bit
	return true
}

// space skips JSON whitespace.
func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips whitespace and takes c if it comes next.
func (s *scanner) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads an object, handing each key to value, which reads its value.
func (s *scanner) object(value func(key []byte) bool) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		key, ok := s.raw()
		if !ok || !s.next(':') || !value(key) {
			return false
		}
		if s.next('}') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

// raw reads a string and returns its bytes, which are b's.
func (s *scanner) raw() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	for j := s.i; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			v := s.b[s.i:j]
			s.i = j + 1
			return v, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

func (s *scanner) str(dst *string) bool {
	v, ok := s.raw()
	if ok {
		*dst = string(v)
	}
	return ok
}

// messageType reads a string, sharing the constants' memory for the known types.
func (s *scanner) messageType(dst *string) bool {
	v, ok := s.raw()
	if !ok {
		return false
	}
	switch string(v) {
	case TypeAck:
		*dst = TypeAck
	case TypeRegister:
		*dst = TypeRegister
	case TypePing:
		*dst = TypePing
	case TypeUnregister:
		*dst = TypeUnregister
	default:
		*dst = string(v)
	}
	return true
}

func (s *scanner) bool(dst *bool) bool {
	s.space()
	rest := s.b[s.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		*dst = true
		s.i += 4
	case len(rest) >= 5 && string(rest[:5]) == "false":
		*dst = false
		s.i += 5
	default:
		return false
	}
	return s.i == len(s.b) || !isLetter(s.b[s.i])
}

// int reads -?(0|[1-9][0-9]{0,8}): any int holds it.
func (s *scanner) int(dst *int) bool {
	s.space()
	j := s.i
	neg := j < len(s.b) && s.b[j] == '-'
	if neg {
		j++
	}
	start, n := j, 0
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' && j-start < 10 {
		n = n*10 + int(s.b[j]-'0')
		j++
	}
	digits := j - start
	if digits == 0 || digits > 9 || (digits > 1 && s.b[start] == '0') {
		return false
	}
	if j < len(s.b) {
		if c := s.b[j]; c == '.' || c == 'e' || c == 'E' || (c >= '0' && c <= '9') {
			return false
		}
	}
	if neg {
		n = -n
	}
	*dst, s.i = n, j
	return true
}

// strings reads an array of strings; an empty one is an empty slice, not nil, as
// encoding/json makes it.
func (s *scanner) strings(dst *[]string) bool {
	if !s.next('[') {
		return false
	}
	out := []string{}
	if !s.next(']') {
		for {
			var v string
			if !s.str(&v) {
				return false
			}
			out = append(out, v)
			if s.next(']') {
				break
			}
			if !s.next(',') {
				return false
			}
		}
	}
	*dst = out
	return true
}

// updates reads an ack's array of updates.
func (s *scanner) updates(dst *[]Update) bool {
	if !s.next('[') {
		return false
	}
	out := []Update{}
	if !s.next(']') {
		outer := s.seen
		for {
			var u Update
			s.seen = 0
			if !s.object(func(key []byte) bool {
				switch string(key) {
				case "channelID":
					return s.field(fChannelID) && s.str(&u.ChannelID)
				case "version":
					return s.field(fVersion) && s.str(&u.Version)
				case "code":
					return s.field(fCode) && s.int(&u.Code)
				}
				return false
			}) {
				return false
			}
			out = append(out, u)
			if s.next(']') {
				break
			}
			if !s.next(',') {
				return false
			}
		}
		s.seen = outer
	}
	*dst = out
	return true
}

func isLetter(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
