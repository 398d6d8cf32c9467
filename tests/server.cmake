# Server tests: `tessera serve` through the official OpenAI Node client and raw HTTP, and a
# short run of the load test (the full 32 clients x 60 s one is scripts/load-test).
find_program(NODE_EXECUTABLE node)
if(NODE_EXECUTABLE)
  add_test(NAME server_openai_client
           COMMAND ${NODE_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/server/openai_client_test.mjs
                   $<TARGET_FILE:tessera> ${TESSERA_TESTDATA})
  add_test(NAME server_load_smoke
           COMMAND ${NODE_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/server/load_test.mjs
                   $<TARGET_FILE:tessera> ${CMAKE_SOURCE_DIR}/examples/TinyStories-656K
                   --clients 8 --seconds 10 --threads 1)
  set(client_test_env "OMP_NUM_THREADS=1")
  set(load_test_env "OMP_NUM_THREADS=1")
  if(TESSERA_SANITIZE)
    # The server process is checked for memory errors here; leaks of the engine and the HTTP
    # server are checked by their own single-process tests (Engine*, HttpServer*) under LSan.
    list(APPEND client_test_env "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
    # ASan's quarantine holds up to 256 MiB of freed memory by design, which the load test's
    # RSS-growth check would read as a leak (169 -> 436 MiB in CI); a 4 MiB quarantine keeps
    # that check meaningful (94 -> 96 MiB) while the client test keeps the full quarantine.
    list(APPEND load_test_env "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:quarantine_size_mb=4")
  endif()
  set_tests_properties(server_openai_client PROPERTIES TIMEOUT 600 ENVIRONMENT "${client_test_env}"
                       COST 25)
  set_tests_properties(server_load_smoke PROPERTIES TIMEOUT 600 ENVIRONMENT "${load_test_env}"
                       COST 12)
else()
  message(WARNING "node not found: the server tests are not registered (run scripts/setup.sh)")
endif()
