#include "base/base64.h"

#include <gtest/gtest.h>

namespace agentfense {
namespace {

TEST(Base64, RoundTripsEveryLengthAndByte) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  for (size_t n = 0; n <= bytes.size(); n += 1) {
    std::string part = bytes.substr(0, n);
    auto back = Base64Decode(Base64Encode(part));
    ASSERT_TRUE(back.ok()) << n;
    EXPECT_EQ(*back, part);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");  // RFC 4648 §10
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
}

TEST(Base64, DecodingIsStrict) {
  for (const char* bad : {"Zg=", "Zg", "Z===", "Zh==", "Zm9=", "Zm9v\n", "Zm 9", "=Zm9", "Zg==Zg==",
                          "Zm-v", "Zm_v"}) {
    EXPECT_FALSE(Base64Decode(bad).ok()) << bad;
  }
  EXPECT_EQ(*Base64Decode(""), "");
}

}  // namespace
}  // namespace agentfense
