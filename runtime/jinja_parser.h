// Parser of tessera's Jinja interpreter: tokens -> syntax tree.
#pragma once
#include <string>

#include "runtime/jinja_ast.h"
#include "runtime/jinja_lexer.h"

namespace tessera::jinja {

// Parses a whole template. Throws UserError with line/column on a syntax error.
Body parse(const std::string& source, const LexOptions& options = {});

}  // namespace tessera::jinja
