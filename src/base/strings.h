// Small string helpers shared by every layer: trimming, joining, padding
// columns, quoting a command line for display or for a shell, and splitting
// "host:port".
// One home for each, so no file keeps its own copy.
//
// Thread-safety: pure functions, safe from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace backstop {

// `s` without leading and trailing ASCII whitespace (space, \t, \r, \n, \v,
// \f). Whitespace only gives "".
std::string Trim(std::string_view s);

// `items` with `sep` between each two: Join({"a", "b"}, ", ") == "a, b".
// An empty list gives "".
std::string Join(const std::vector<std::string>& items, std::string_view sep = ", ");

// `s` left-aligned in a column of `width` characters as displayed (UTF-8
// aware: a multi-byte character counts once), for text tables. A value that
// fills or overflows the column gets one space after it, so columns never
// run together.
std::string Pad(const std::string& s, size_t width);

// `argv` as one line for people to read (errors, logs, plans): words
// separated by spaces, an empty word or one with a space, tab, quote,
// backslash or '$' in single quotes. Not for passing to a shell.
std::string ShellJoin(const std::vector<std::string>& argv);

// `word` quoted for a POSIX shell so it stays one word whatever it holds:
// in single quotes, each ' written as '\''. For scripts Backstop writes
// (a drill's breaking release), where ShellJoin's display form is not safe.
std::string ShellQuote(std::string_view word);

// `text` with every occurrence of `from` (not empty) replaced by `to`, left
// to right; what `to` brings in is not searched again.
std::string ReplaceAll(std::string text, std::string_view from, std::string_view to);

// Splits "host:port" or "[v6-address]:port"; a leading "tcp://" is ignored.
// False (and *host, *port unspecified) unless the host is not empty and the
// port is one or more decimal digits.
bool SplitHostPort(std::string_view target, std::string* host, std::string* port);

}  // namespace backstop
