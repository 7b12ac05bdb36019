// The HTTP/1 protocol folder's headers in one include. Prefer the header
// that holds what you use: message.h, request_parser.h, response_parser.h,
// body_decoder.h, fields.h.
#ifndef FORKD_SERVER_HTTP1_HTTP1_PARSER_H_
#define FORKD_SERVER_HTTP1_HTTP1_PARSER_H_

#include "server/http1/body_decoder.h"
#include "server/http1/fields.h"
#include "server/http1/message.h"
#include "server/http1/request_parser.h"
#include "server/http1/response_parser.h"

#endif  // FORKD_SERVER_HTTP1_HTTP1_PARSER_H_
