package cgofs

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscapeName(t *testing.T) {
	for _, c := range []struct{ node, windows string }{
		{"plain.txt", "plain.txt"},
		{"naïve café", "naïve café"},
		{".hidden", ".hidden"},
		{"a:b", "a\uF03Ab"},
		{`<>:"\|?*`, "\uF03C\uF03E\uF03A\uF022\uF05C\uF07C\uF03F\uF02A"},
		{"tab\there", "tab\uF009here"},
		{"trailing.", "trailing\uF02E"},
		{"trailing..", "trailing.\uF02E"},
		{"space ", "space\uF020"},
		{" leading space", " leading space"},
		{"CON", "\uF043ON"},
		{"con", "\uF063on"},
		{"Nul.tar.gz", "\uF04Eul.tar.gz"},
		{"aux .txt", "\uF061ux .txt"},
		{"COM1", "\uF043OM1"},
		{"lpt9.log", "\uF06Cpt9.log"},
		{"COM¹", "\uF043OM¹"},
		{"CONIN$", "\uF043ONIN$"},
		{"CON.", "\uF043ON\uF02E"},
		{"COM10", "COM10"},
		{"CONSOLE", "CONSOLE"},
		{"nul-device", "nul-device"},
		{"latin1-\xe9", "latin1-\uF0E9"},
		{"\xff\xfe", "\uF0FF\uF0FE"},
		{"wsl\uF03Aname", "wsl\uF000\uF03Aname"},
		{"quote\uF000", "quote\uF000\uF000"},
		{"slash-look\uF02F", "slash-look\uF02F"},
		{"above\uF100", "above\uF100"},
	} {
		if got := EscapeName(c.node); got != c.windows {
			t.Errorf("EscapeName(%q) = %q, want %q", c.node, got, c.windows)
		}
		if got := UnescapeName(c.windows); got != c.node {
			t.Errorf("UnescapeName(%q) = %q, want %q", c.windows, got, c.node)
		}
	}
}

func TestUnescapeNameFromWindows(t *testing.T) {
	// Names typed on Windows (or written by WSL or Cygwin) in the escaped
	// form read as the characters they stand for; a stray quote stays.
	for _, c := range []struct{ windows, node string }{
		{"a\uF03Ab", "a:b"},
		{"\uF000", "\uF000"},
		{"x\uF000y", "x\uF000y"},
		{"\uF02F", "\uF02F"},
		{"\uF041", "A"},
		{"\uF02E", "\uF02E"},
		{"\uF02E\uF02E", "\uF02E\uF02E"},
		{"\uF02E\uF02E\uF02E", "..."},
	} {
		if got := UnescapeName(c.windows); got != c.node {
			t.Errorf("UnescapeName(%q) = %q, want %q", c.windows, got, c.node)
		}
	}
}

// reservedRe is Windows's list of device names, written independently of
// reservedBase.
var reservedRe = regexp.MustCompile(`(?i)^(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]|CONIN\$|CONOUT\$) *(\..*)?$`)

// windowsValid reports whether Windows can hold name as a file name.
func windowsValid(name string) bool {
	if name == "" || !utf8.ValidString(name) || strings.ContainsAny(name, `<>:"/\|?*`) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 {
			return false
		}
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		return false
	}
	return !reservedRe.MatchString(name)
}

func hasPrivateRange(name string) bool {
	for _, r := range name {
		if r >= 0xF000 && r <= 0xF0FF {
			return true
		}
	}
	return false
}

func validNodeName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// FuzzEscapeName checks that every node name escapes to a name Windows can
// hold and back, and that names Windows can hold as they are stay so.
func FuzzEscapeName(f *testing.F) {
	for _, s := range []string{"a", "a:b", "CON", "con.txt", "x.", "x ", "\xff", "\uF03A", "\uF000\uF000", "COM¹.x", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !validNodeName(name) {
			return
		}
		w := EscapeName(name)
		if !windowsValid(w) {
			t.Fatalf("EscapeName(%q) = %q, which Windows cannot hold", name, w)
		}
		if back := UnescapeName(w); back != name {
			t.Fatalf("UnescapeName(EscapeName(%q)) = %q", name, back)
		}
		if windowsValid(name) && !hasPrivateRange(name) {
			if w != name {
				t.Fatalf("EscapeName(%q) = %q, want it unchanged", name, w)
			}
		}
	})
}

// FuzzUnescapeName checks that any name Windows gives reads as a valid
// node name, unchanged unless it holds characters of U+F000–U+F0FF, and
// that escaping it again leads back to the same node name.
func FuzzUnescapeName(f *testing.F) {
	for _, s := range []string{"a", "a\uF03Ab", "\uF000", "\uF000x", "\uF02F", "\uF0FF\uF0FE", "\uF000\uF0FF", "\uF02E", "\uF02E."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, w string) {
		if !validNodeName(w) || !utf8.ValidString(w) {
			return
		}
		n := UnescapeName(w)
		if !validNodeName(n) {
			t.Fatalf("UnescapeName(%q) = %q, not a valid node name", w, n)
		}
		if !hasPrivateRange(w) && n != w {
			t.Fatalf("UnescapeName(%q) = %q, want it unchanged", w, n)
		}
		if again := UnescapeName(EscapeName(n)); again != n {
			t.Fatalf("UnescapeName(EscapeName(%q)) = %q", n, again)
		}
	})
}
