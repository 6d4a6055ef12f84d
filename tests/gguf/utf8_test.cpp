// Strict UTF-8 validation (used for keys, tensor names and vocabularies) and message escaping.
#include <gtest/gtest.h>

#include "gguf/utf8.h"

namespace velo::gguf {
namespace {

TEST(GgufUtf8, AcceptsWellFormedText) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("plain ascii \x01\x7f"));
  EXPECT_TRUE(valid_utf8("\xc2\x80"));              // U+0080, smallest 2-byte
  EXPECT_TRUE(valid_utf8("\xdf\xbf"));              // U+07FF
  EXPECT_TRUE(valid_utf8("\xe0\xa0\x80"));          // U+0800, smallest 3-byte
  EXPECT_TRUE(valid_utf8("\xe2\x96\x81hello"));     // SentencePiece space marker
  EXPECT_TRUE(valid_utf8("\xed\x9f\xbf"));          // U+D7FF, just below surrogates
  EXPECT_TRUE(valid_utf8("\xee\x80\x80"));          // U+E000, just above
  EXPECT_TRUE(valid_utf8("\xf0\x90\x80\x80"));      // U+10000
  EXPECT_TRUE(valid_utf8("\xf0\x9f\x98\x80"));      // emoji
  EXPECT_TRUE(valid_utf8("\xf4\x8f\xbf\xbf"));      // U+10FFFF, the maximum
  EXPECT_TRUE(valid_utf8(std::string_view("a\0b", 3)));  // NUL is a valid code point
}

TEST(GgufUtf8, RejectsMalformedText) {
  EXPECT_FALSE(valid_utf8("\x80"));                 // lone continuation
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));             // overlong '/'
  EXPECT_FALSE(valid_utf8("\xc1\xbf"));             // overlong
  EXPECT_FALSE(valid_utf8("\xe0\x9f\xbf"));         // overlong 3-byte
  EXPECT_FALSE(valid_utf8("\xf0\x8f\xbf\xbf"));     // overlong 4-byte
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));         // U+D800 surrogate
  EXPECT_FALSE(valid_utf8("\xed\xbf\xbf"));         // U+DFFF surrogate
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));     // U+110000
  EXPECT_FALSE(valid_utf8("\xf5\x80\x80\x80"));     // lead byte past F4
  EXPECT_FALSE(valid_utf8("\xff"));
  EXPECT_FALSE(valid_utf8("\xe2\x96"));             // truncated
  EXPECT_FALSE(valid_utf8("ok\xf0\x9f\x98"));       // truncated at end
  EXPECT_FALSE(valid_utf8("\xe2\x28\xa1"));         // bad continuation
  EXPECT_FALSE(valid_utf8("\xc2\xc2"));
}

TEST(GgufUtf8, PrintableEscapesAndCuts) {
  EXPECT_EQ(printable("blk.0.attn_q.weight"), "blk.0.attn_q.weight");
  EXPECT_EQ(printable("a\nb\\c"), "a\\x0ab\\x5cc");
  EXPECT_EQ(printable("\xe2\x96\x81"), "\\xe2\\x96\\x81");
  EXPECT_EQ(printable(std::string(100, 'x'), 10), "xxxxxxxxxx...");
}

}  // namespace
}  // namespace velo::gguf
