// The tests' precompiled header (CMakeLists.txt): the headers most test files include, parsed
// once per build instead of once per file.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>
