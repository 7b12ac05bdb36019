// Certificates made at test time with OpenSSL's API (P-256 keys): a CA, a
// server certificate for 127.0.0.1 it signed, a client certificate, and
// PEM files of them in a fresh temp directory.
#ifndef FORKD_TESTS_UNIT_TLS_TEST_CERTS_H_
#define FORKD_TESTS_UNIT_TLS_TEST_CERTS_H_

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace forkd::tls::testing {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;

inline Key NewKey() { return Key(EVP_EC_gen("P-256")); }

// A certificate for `key` named `cn`, signed by `issuer_key` (self-signed
// when `issuer` is nullptr).
inline Cert NewCert(EVP_PKEY* key, const char* cn, X509* issuer,
                    EVP_PKEY* issuer_key, bool is_ca) {
  Cert x(X509_new());
  X509_set_version(x.get(), 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 3600L * 24 * 30);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn), -1, -1,
                             0);
  X509_set_issuer_name(
      x.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer != nullptr ? issuer : x.get(), x.get(), nullptr,
                 nullptr, 0);
  auto add = [&](int nid, const char* value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
  };
  if (is_ca) {
    add(NID_basic_constraints, "critical,CA:TRUE");
    add(NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add(NID_basic_constraints, "CA:FALSE");
    add(NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  }
  X509_sign(x.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256());
  return x;
}

inline std::string KeyPem(EVP_PKEY* key, const char* passphrase = nullptr) {
  BIO* b = BIO_new(BIO_s_mem());
  if (passphrase != nullptr) {
    PEM_write_bio_PrivateKey(b, key, EVP_aes_256_cbc(),
                             reinterpret_cast<const unsigned char*>(passphrase),
                             static_cast<int>(strlen(passphrase)), nullptr,
                             nullptr);
  } else {
    PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  }
  char* data;
  long n = BIO_get_mem_data(b, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(b);
  return pem;
}

inline std::string CertPem(X509* cert) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, cert);
  char* data;
  long n = BIO_get_mem_data(b, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(b);
  return pem;
}

// The test's files, removed with it.
class CertDir {
 public:
  CertDir() {
    std::string tmpl = ::testing::TempDir() + "/forkd_tls_XXXXXX";
    dir_ = mkdtemp(tmpl.data());
    ca_key = NewKey();
    ca = NewCert(ca_key.get(), "forkd test CA", nullptr, nullptr, true);
    server_key = NewKey();
    server =
        NewCert(server_key.get(), "127.0.0.1", ca.get(), ca_key.get(), false);
    client_key = NewKey();
    client = NewCert(client_key.get(), "forkd test client", ca.get(),
                     ca_key.get(), false);
    cert_path = Write("server.pem", CertPem(server.get()) + CertPem(ca.get()));
    key_path = Write("server.key", KeyPem(server_key.get()));
    ca_path = Write("ca.pem", CertPem(ca.get()));
  }
  ~CertDir() {
    std::string cmd = "rm -rf '" + dir_ + "'";
    (void)!system(cmd.c_str());
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::trunc) << text;
    return path;
  }
  const std::string& dir() const { return dir_; }

  Key ca_key, server_key, client_key;
  Cert ca, server, client;
  std::string cert_path, key_path, ca_path;

 private:
  std::string dir_;
};

}  // namespace forkd::tls::testing

#endif  // FORKD_TESTS_UNIT_TLS_TEST_CERTS_H_
