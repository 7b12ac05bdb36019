#include "server/accesslog/access_log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace forkd::accesslog {
namespace {

using ::testing::HasSubstr;

class AccessLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("TZ", "UTC", 1);
    tzset();
    request_headers_ = {
        {"Host", "example.com"},
        {"User-Agent", "curl/8.0"},
        {"Referer", "https://ref.example/"},
        {"Authorization", "Basic YWxpY2U6c2VjcmV0"},  // alice:secret
        {"X-Forwarded-For", "203.0.113.7, 10.0.0.2"},
    };
    response_headers_ = {{"Content-Type", "text/plain"},
                         {"X-Served-By", "app-1"}};
    entry_.remote_addr = "10.0.0.1";
    entry_.start = absl::FromCivil(absl::CivilSecond(2000, 10, 10, 13, 55, 36),
                                   absl::UTCTimeZone()) +
                   absl::Milliseconds(250);
    entry_.duration_s = 1.234567;
    entry_.upstream_s = 0.0005;
    entry_.method = "GET";
    entry_.target = "/a/b?x=1&y=2";
    entry_.protocol = "HTTP/1.1";
    entry_.status = 200;
    entry_.body_bytes = 1234;
    entry_.request_id = "req-42";
    entry_.request_headers = &request_headers_;
    entry_.response_headers = &response_headers_;
  }

  std::string FormatWith(std::string_view format) {
    absl::StatusOr<Formatter> f = Formatter::Create(format);
    EXPECT_TRUE(f.ok()) << f.status();
    if (!f.ok()) return "";
    std::string out;
    f->Format(entry_, &out);
    EXPECT_FALSE(out.empty());
    EXPECT_EQ(out.back(), '\n');
    if (!out.empty()) out.pop_back();
    return out;
  }

  std::string CreateError(std::string_view format) {
    absl::StatusOr<Formatter> f = Formatter::Create(format);
    EXPECT_FALSE(f.ok());
    if (f.ok()) return "";
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(f.status().message());
  }

  std::vector<http1::Header> request_headers_;
  std::vector<http1::Header> response_headers_;
  Entry entry_;
};

constexpr char kGunicornDefault[] =
    R"(%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s")";

TEST_F(AccessLogTest, GunicornDefaultFormatLine) {
  absl::StatusOr<Formatter> f = Formatter::Create(kGunicornDefault);
  ASSERT_TRUE(f.ok()) << f.status();
  std::string out;
  f->Format(entry_, &out);
  EXPECT_EQ(out,
            "10.0.0.1 - alice [10/Oct/2000:13:55:36 +0000] "
            "\"GET /a/b?x=1&y=2 HTTP/1.1\" 200 1234 "
            "\"https://ref.example/\" \"curl/8.0\"\n");
}

TEST_F(AccessLogTest, FormatAppendsToExistingText) {
  absl::StatusOr<Formatter> f = Formatter::Create("%(s)s");
  ASSERT_TRUE(f.ok());
  std::string out = "first\n";
  f->Format(entry_, &out);
  f->Format(entry_, &out);
  EXPECT_EQ(out, "first\n200\n200\n");
}

TEST_F(AccessLogTest, EachAtom) {
  const std::string pid = absl::StrCat("<", getpid(), ">");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"%(h)s", "10.0.0.1"},
      {"%(l)s", "-"},
      {"%(u)s", "alice"},
      {"%(t)s", "[10/Oct/2000:13:55:36 +0000]"},
      {"%(r)s", "GET /a/b?x=1&y=2 HTTP/1.1"},
      {"%(m)s", "GET"},
      {"%(U)s", "/a/b"},
      {"%(q)s", "x=1&y=2"},
      {"%(H)s", "HTTP/1.1"},
      {"%(s)s", "200"},
      {"%(B)s", "1234"},
      {"%(b)s", "1234"},
      {"%(f)s", "https://ref.example/"},
      {"%(a)s", "curl/8.0"},
      {"%(T)s", "1"},
      {"%(M)s", "1234"},
      {"%(D)s", "1234567"},
      {"%(L)s", "1.234567"},
      {"%(p)s", pid},
      {"%(rid)s", "req-42"},
  };
  for (const auto& [format, expected] : cases) {
    EXPECT_EQ(FormatWith(format), expected) << format;
  }
}

TEST_F(AccessLogTest, EmptyAndMissingValues) {
  entry_.remote_addr = "";
  entry_.body_bytes = 0;
  entry_.target = "/only-path";
  entry_.request_id = "";
  entry_.duration_s = 0.001234;
  request_headers_.clear();
  EXPECT_EQ(FormatWith("%(h)s|%(u)s|%(f)s|%(a)s|%(b)s|%(B)s|%(q)s|%(rid)s"),
            "-|-|-|-|-|0||-");
  EXPECT_EQ(FormatWith("%(T)s %(M)s %(D)s %(L)s"), "0 1 1234 0.001234");
  entry_.request_headers = nullptr;
  entry_.response_headers = nullptr;
  EXPECT_EQ(FormatWith("%({x}i)s %({y}o)s %(u)s"), "- - -");
}

TEST_F(AccessLogTest, BasicAuthUserVariants) {
  request_headers_ = {{"authorization", "basic Ym9i"}};  // "bob", no ':'
  EXPECT_EQ(FormatWith("%(u)s"), "bob");
  request_headers_ = {{"Authorization", "Bearer abc.def"}};
  EXPECT_EQ(FormatWith("%(u)s"), "-");
  request_headers_ = {{"Authorization", "Basic !!!"}};
  EXPECT_EQ(FormatWith("%(u)s"), "-");
  // A user name with a quote is escaped like any other value.
  request_headers_ = {{"Authorization", "Basic YSJiOnB3"}};  // a"b:pw
  EXPECT_EQ(FormatWith("%(u)s"), "a\\\"b");
}

TEST_F(AccessLogTest, HeaderAtomsAreCaseInsensitive) {
  EXPECT_EQ(FormatWith("%({x-forwarded-for}i)s"), "203.0.113.7, 10.0.0.2");
  EXPECT_EQ(FormatWith("%({X-FORWARDED-FOR}i)s"), "203.0.113.7, 10.0.0.2");
  EXPECT_EQ(FormatWith("%({content-type}o)s"), "text/plain");
  EXPECT_EQ(FormatWith("%({x-served-by}o)s"), "app-1");
  EXPECT_EQ(FormatWith("%({x-missing}i)s %({x-missing}o)s"), "- -");
  // Request and response headers are separate.
  EXPECT_EQ(FormatWith("%({content-type}i)s %({user-agent}o)s"), "- -");
}

// %({NAME}e)s: the master resolves it (ResolveEnvironment) from its own
// environment; the worker formats the result with no environment.
TEST_F(AccessLogTest, EnvironmentAtom) {
  Formatter::EnvLookup env = [](const std::string& name) -> const char* {
    return name == "FORKD_ACCESSLOG_TEST_POD" ? "web-7%" : nullptr;
  };
  absl::StatusOr<std::string> resolved = ResolveEnvironment(
      "pod=%({FORKD_ACCESSLOG_TEST_POD}e)s "
      "x=%({FORKD_ACCESSLOG_TEST_UNSET}e)s %(s)s %({X-A}i)s %({x-b}o)s 5%%",
      env);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(*resolved, "pod=web-7%% x=- %(s)s %({X-A}i)s %({x-b}o)s 5%%");
  EXPECT_EQ(FormatWith(*resolved).substr(0, 14), "pod=web-7% x=-");
  // Without a lookup (a worker) nothing is read from the environment.
  setenv("FORKD_ACCESSLOG_TEST_POD", "web-7", 1);
  EXPECT_EQ(FormatWith("pod=%({FORKD_ACCESSLOG_TEST_POD}e)s"), "pod=-");
  unsetenv("FORKD_ACCESSLOG_TEST_POD");
  EXPECT_EQ(*ResolveEnvironment("json", env), "json");
}

TEST_F(AccessLogTest, LiteralsAndPercent) {
  EXPECT_EQ(FormatWith("100%% [%(s)s] rid=%(rid)s;"), "100% [200] rid=req-42;");
  EXPECT_EQ(FormatWith("no atoms"), "no atoms");
}

TEST_F(AccessLogTest, LocalTimeZoneOffset) {
  setenv("TZ", "XYZ-2:30", 1);  // POSIX: 2h30 east of UTC, no tzdata needed
  tzset();
  EXPECT_EQ(FormatWith("%(t)s"), "[10/Oct/2000:16:25:36 +0230]");
  setenv("TZ", "ABC5", 1);
  tzset();
  EXPECT_EQ(FormatWith("%(t)s"), "[10/Oct/2000:08:55:36 -0500]");
  setenv("TZ", "UTC", 1);
  tzset();
}

TEST_F(AccessLogTest, ValuesAreEscapedSoTheLineCannotBreak) {
  request_headers_ = {{"User-Agent", "a\"b\\c\nd\x01\x7f\xc3\xa9"},
                      {"Referer", "\" injected=\"1"}};
  entry_.target = "/p\"q";
  EXPECT_EQ(FormatWith(kGunicornDefault),
            "10.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "
            "\"GET /p\\\"q HTTP/1.1\" 200 1234 "
            "\"\\\" injected=\\\"1\" "
            "\"a\\\"b\\\\c\\x0ad\\x01\\x7f\\xc3\\xa9\"");
  // Literal text from the format itself is not escaped.
  EXPECT_EQ(FormatWith("\"%(m)s\"\t"), "\"GET\"\t");
}

TEST_F(AccessLogTest, UnknownAtomAndBadSyntaxAreErrors) {
  EXPECT_THAT(CreateError("%(h)s %(x)s"), HasSubstr("unknown atom %(x)s"));
  EXPECT_THAT(CreateError("%(remote_addr)s"),
              HasSubstr("unknown atom %(remote_addr)s"));
  EXPECT_THAT(CreateError("%({x}z)s"), HasSubstr("unknown atom %({x}z)s"));
  EXPECT_THAT(CreateError("%({}i)s"), HasSubstr("empty name"));
  EXPECT_THAT(CreateError("%(h)d"), HasSubstr("%(h) must be followed by 's'"));
  EXPECT_THAT(CreateError("%(h"), HasSubstr("unterminated"));
  EXPECT_THAT(CreateError("50% done"), HasSubstr("lone '%' at offset 2"));
  EXPECT_THAT(CreateError("end %"), HasSubstr("lone '%'"));
  EXPECT_THAT(CreateError(""), HasSubstr("empty"));
}

// A minimal JSON reader for one flat object of string and number values:
// enough to prove the line parses and to read it back.
class FlatJson {
 public:
  explicit FlatJson(std::string_view s) : s_(s) {}

  bool Parse(std::vector<std::pair<std::string, std::string>>* fields) {
    if (!Eat('{')) return false;
    if (Eat('}')) return pos_ == s_.size();
    do {
      std::string key, value;
      if (!String(&key) || !Eat(':')) return false;
      if (pos_ < s_.size() && s_[pos_] == '"') {
        if (!String(&value)) return false;
      } else if (!Number(&value)) {
        return false;
      }
      fields->emplace_back(key, value);
    } while (Eat(','));
    return Eat('}') && pos_ == s_.size();
  }

 private:
  bool Eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (pos_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;  // raw control characters are invalid
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        continue;
      }
      if (pos_ >= s_.size()) return false;
      char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 'u': {
          if (pos_ + 4 > s_.size()) return false;
          std::string hex(s_.substr(pos_, 4));
          pos_ += 4;
          unsigned v = static_cast<unsigned>(strtoul(hex.c_str(), nullptr, 16));
          out->append(v == 0xfffd ? "\xef\xbf\xbd" : std::string(1, char(v)));
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }
  bool Number(std::string* out) {
    size_t start = pos_;
    while (pos_ < s_.size() && (isdigit(static_cast<unsigned char>(s_[pos_])) ||
                                s_[pos_] == '.' || s_[pos_] == '-')) {
      ++pos_;
    }
    *out = std::string(s_.substr(start, pos_ - start));
    return pos_ > start;
  }
  std::string_view s_;
  size_t pos_ = 0;
};

TEST_F(AccessLogTest, JsonLineParsesWithAllKeys) {
  absl::StatusOr<Formatter> f = Formatter::Create("json");
  ASSERT_TRUE(f.ok()) << f.status();
  std::string out;
  f->Format(entry_, &out);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1);  // exactly one line
  out.pop_back();
  std::vector<std::pair<std::string, std::string>> fields;
  ASSERT_TRUE(FlatJson(out).Parse(&fields)) << out;
  std::vector<std::pair<std::string, std::string>> expected = {
      {"remote_addr", "10.0.0.1"},
      {"time", "2000-10-10T13:55:36.250+00:00"},
      {"method", "GET"},
      {"path", "/a/b"},
      {"query", "x=1&y=2"},
      {"protocol", "HTTP/1.1"},
      {"status", "200"},
      {"bytes", "1234"},
      {"referer", "https://ref.example/"},
      {"user_agent", "curl/8.0"},
      {"duration_s", "1.234567"},
      {"upstream_s", "0.000500"},
      {"request_id", "req-42"},
      {"pid", absl::StrCat(getpid())},
  };
  EXPECT_EQ(fields, expected);
}

TEST_F(AccessLogTest, JsonEscapesStringsAndKeepsValidUtf8) {
  request_headers_ = {{"User-Agent", "a\"b\\c\nd\x01\tz \xc3\xa9 \xff!"}};
  entry_.target = "/p?q=\"x\"";
  absl::StatusOr<Formatter> f = Formatter::Create("json");
  ASSERT_TRUE(f.ok());
  std::string out;
  f->Format(entry_, &out);
  EXPECT_THAT(out, HasSubstr(R"("user_agent":"a\"b\\c\nd\u0001\tz )"
                             "\xc3\xa9"
                             R"( \ufffd!")"));
  EXPECT_THAT(out, HasSubstr(R"("query":"q=\"x\"")"));
  EXPECT_THAT(out, HasSubstr(R"("referer":"")"));
  out.pop_back();
  std::vector<std::pair<std::string, std::string>> fields;
  ASSERT_TRUE(FlatJson(out).Parse(&fields)) << out;
  EXPECT_EQ(fields[9].first, "user_agent");
  EXPECT_EQ(fields[9].second, "a\"b\\c\nd\x01\tz \xc3\xa9 \xef\xbf\xbd!");
}

// --- AccessLog: files -------------------------------------------------------

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TempPath(const std::string& name) {
  std::string path = ::testing::TempDir() + "/forkd_access_log_test_" +
                     std::to_string(getpid()) + "_" + name;
  unlink(path.c_str());
  return path;
}

TEST_F(AccessLogTest, LogAppendsLinesToTheFile) {
  std::string path = TempPath("append.log");
  { std::ofstream(path) << "existing\n"; }
  absl::StatusOr<std::unique_ptr<AccessLog>> log =
      AccessLog::Create(path, "%(m)s %(U)s %(s)s");
  ASSERT_TRUE(log.ok()) << log.status();
  (*log)->Log(entry_);
  entry_.status = 404;
  (*log)->Log(entry_);
  EXPECT_EQ(ReadAll(path), "existing\nGET /a/b 200\nGET /a/b 404\n");
}

TEST_F(AccessLogTest, ReopenAfterRenameStartsANewFile) {
  std::string path = TempPath("rotate.log");
  std::string rotated = path + ".1";
  unlink(rotated.c_str());
  absl::StatusOr<std::unique_ptr<AccessLog>> log =
      AccessLog::Create(path, "%(s)s");
  ASSERT_TRUE(log.ok()) << log.status();
  (*log)->Log(entry_);
  ASSERT_EQ(rename(path.c_str(), rotated.c_str()), 0);
  entry_.status = 201;
  (*log)->Log(entry_);  // still the old (renamed) file
  (*log)->Reopen();
  entry_.status = 202;
  (*log)->Log(entry_);
  EXPECT_EQ(ReadAll(rotated), "200\n201\n");
  EXPECT_EQ(ReadAll(path), "202\n");
}

TEST_F(AccessLogTest, ConcurrentLogAndReopenKeepLinesWhole) {
  std::string path = TempPath("concurrent.log");
  std::string rotated = path + ".1";
  unlink(rotated.c_str());
  absl::StatusOr<std::unique_ptr<AccessLog>> log =
      AccessLog::Create(path, "json");
  ASSERT_TRUE(log.ok()) << log.status();
  constexpr int kThreads = 4;
  constexpr int kLines = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Entry e = entry_;
      std::string rid = absl::StrCat("t", t);
      e.request_id = rid;
      for (int i = 0; i < kLines; ++i) (*log)->Log(e);
    });
  }
  ASSERT_EQ(rename(path.c_str(), rotated.c_str()), 0);
  (*log)->Reopen();
  for (std::thread& th : threads) th.join();
  int lines = 0;
  for (const std::string& p : {rotated, path}) {
    std::istringstream in(ReadAll(p));
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::pair<std::string, std::string>> fields;
      EXPECT_TRUE(FlatJson(line).Parse(&fields)) << line;
      ++lines;
    }
  }
  EXPECT_EQ(lines, kThreads * kLines);
}

TEST_F(AccessLogTest, CreateErrors) {
  absl::StatusOr<std::unique_ptr<AccessLog>> bad_format =
      AccessLog::Create(TempPath("never.log"), "%(nope)s");
  ASSERT_FALSE(bad_format.ok());
  EXPECT_THAT(std::string(bad_format.status().message()),
              HasSubstr("unknown atom %(nope)s"));
  absl::StatusOr<std::unique_ptr<AccessLog>> bad_path =
      AccessLog::Create("/nonexistent-dir/access.log", kGunicornDefault);
  ASSERT_FALSE(bad_path.ok());
  EXPECT_THAT(std::string(bad_path.status().message()),
              HasSubstr("/nonexistent-dir/access.log"));
  EXPECT_FALSE(AccessLog::Create("", kGunicornDefault).ok());
}

TEST_F(AccessLogTest, DashMeansStdout) {
  absl::StatusOr<std::unique_ptr<AccessLog>> log =
      AccessLog::Create("-", kGunicornDefault);
  ASSERT_TRUE(log.ok()) << log.status();
  (*log)->Reopen();  // a no-op for stdout
  log->reset();      // must not close fd 1
  EXPECT_NE(fcntl(STDOUT_FILENO, F_GETFD), -1);
}

}  // namespace
}  // namespace forkd::accesslog
