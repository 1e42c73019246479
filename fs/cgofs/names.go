package cgofs

import (
	"strings"
	"unicode/utf8"
)

// Windows cannot hold every name a POSIX system can: it forbids the
// characters < > : " / \ | ? * and the controls 1–31, names that end in a
// dot or a space, device names such as CON or LPT1 (with any extension),
// and UTF-16 cannot carry bytes that are not UTF-8. The drive keeps names
// as they are in the node table (so every device agrees on them) and shows
// Windows an escaped form, the way Cygwin and WSL store such names on NTFS:
//
//   - a byte b that Windows cannot hold (a forbidden character, the final
//     dot or space, the first letter of a device name, a byte of invalid
//     UTF-8) is shown as the private-use character U+F000+b, for example
//     "a:b" as "a\uF03Ab" and "CON" as "\uF043ON";
//   - a character of U+F000–U+F0FF already in a name (other than U+F02F)
//     is shown after the quote U+F000, so that escaping stays reversible.
//
// UnescapeName undoes it: U+F000+b reads as byte b, U+F000 followed by a
// character of the range reads as that character. U+F02F ('/') is never
// produced and reads as itself, so no name from Windows becomes a path
// (nor do "\uF02E" and "\uF02E\uF02E", which stay as they are).
// Names that Windows can hold and that have no character of U+F000–U+F0FF
// are the same in both forms.

const (
	escBase  = 0xF000 // U+F000+b stands for byte b
	escQuote = escBase
	escSlash = escBase + '/'
	escLast  = escBase + 0xFF
)

// inEscapeRange reports whether r is a character that UnescapeName decodes
// (and that EscapeName must therefore quote when a name holds it).
func inEscapeRange(r rune) bool { return r >= escBase && r <= escLast && r != escSlash }

// forbidden reports whether Windows refuses byte c anywhere in a name.
func forbidden(c byte) bool {
	switch c {
	case '<', '>', ':', '"', '\\', '|', '?', '*':
		return true
	}
	return c < 0x20
}

// reservedBase reports whether the part of name before its first dot,
// without trailing spaces, is a device name Windows reserves in every
// folder (CON, PRN, AUX, NUL, COM0–9, LPT0–9 and their superscript-digit
// forms, CONIN$, CONOUT$), compared without case.
func reservedBase(name string) bool {
	base, _, _ := strings.Cut(name, ".")
	base = strings.ToUpper(strings.TrimRight(base, " "))
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(base) < 4 || (base[:3] != "COM" && base[:3] != "LPT") {
		return false
	}
	switch base[3:] {
	case "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³":
		return true
	}
	return false
}

// EscapeName returns the form of a node name that Windows can hold (see
// the comment above). name must be a valid node name: not empty, without
// '/' or NUL.
func EscapeName(name string) string {
	if !needsEscape(name) {
		return name
	}
	var b strings.Builder
	b.Grow(len(name) + 8)
	reserved := reservedBase(name)
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteRune(rune(escBase + int(name[i])))
		case size == 1 && (forbidden(name[i]) || (i == 0 && reserved) || (i == len(name)-1 && (r == '.' || r == ' '))):
			b.WriteRune(rune(escBase + int(name[i])))
		case inEscapeRange(r):
			b.WriteRune(escQuote)
			b.WriteRune(r)
		default:
			b.WriteString(name[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(name string) bool {
	if name == "" || !utf8.ValidString(name) || reservedBase(name) {
		return name != ""
	}
	if last := name[len(name)-1]; last == '.' || last == ' ' {
		return name != "." && name != ".."
	}
	for i := 0; i < len(name); i++ {
		if forbidden(name[i]) {
			return true
		}
	}
	return hasEscapeRune(name)
}

// UnescapeName returns the node name that a name shown to Windows stands
// for: EscapeName's inverse.
func UnescapeName(name string) string {
	if !hasEscapeRune(name) {
		return name
	}
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		i += size
		switch {
		case r == escQuote && i < len(name):
			if next, nsize := utf8.DecodeRuneInString(name[i:]); inEscapeRange(next) {
				b.WriteRune(next)
				i += nsize
				continue
			}
			b.WriteRune(r)
		case r != escQuote && inEscapeRange(r):
			b.WriteByte(byte(r - escBase))
		default:
			b.WriteString(name[i-size : i])
		}
	}
	if n := b.String(); n != "." && n != ".." {
		return n
	}
	return name // "\uF02E" is a name, not a path element
}

// hasEscapeRune reports whether name holds a character of U+F000–U+F0FF
// (UTF-8 EF 80 80 to EF 83 BF).
func hasEscapeRune(name string) bool {
	for i := 0; i+2 < len(name); i++ {
		if name[i] == 0xEF && name[i+1] >= 0x80 && name[i+1] <= 0x83 {
			return true
		}
	}
	return false
}
