# The two commands a new user needs: `make demo` and `make test`. Both install
# missing Debian packages first (scripts/deps.sh, a no-op when all is present).
JOBS ?= 2
BUILD := build
BUILD_ASAN := build-asan
BUILD_FUZZ := build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: all build asan test fuzz demo bench deps deps-test deps-fuzz clean format

all: build

deps:
	@./scripts/deps.sh

deps-test:
	@./scripts/deps.sh test

deps-fuzz:
	@./scripts/deps.sh fuzz

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

asan: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DSABHA_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j$(JOBS)

# Every test in the optimized build, then the same suite (less the tests
# labelled slow) built with AddressSanitizer and UndefinedBehaviorSanitizer.
test: deps-test build asan
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	@cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j$(JOBS) -LE slow

# Every libFuzzer target (tests/fuzz) for FUZZ_SECONDS seconds each, built
# with clang, ASan and UBSan into build-fuzz/; one line per target, and a
# non-zero exit with the input's path on a finding (scripts/fuzz.sh). The
# corpora are copied, never changed: docs/fuzzing.md says how to keep finds.
fuzz: deps-fuzz
	@CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSABHA_FUZZ=ON >/dev/null
	@cmake --build $(BUILD_FUZZ) -j$(JOBS) --target fuzz_all >/dev/null
	@./scripts/fuzz.sh $(FUZZ_SECONDS) $(BUILD_FUZZ)

# A short simulated 5-node Raft cluster under every kind of fault, the three
# engines side by side on the same seeds and faults, then a real 3-node
# cluster on 127.0.0.1: writes with redis-cli, the leader killed, nothing
# acknowledged lost; last, a short lab (benchmark and monsoon, every engine)
# whose report lands in lab-out/report.html.
demo: build
	@echo "== sabha demo: 5-node Raft, 20 seeds, partitions, crashes, loss, duplication, reordering, slow nodes, clock drift =="
	@./$(BUILD)/sabha sim --protocol raft --nodes 5 --seeds 1..20 --ops 500 --faults all
	@echo
	@echo "== the same seeds and faults on every engine =="
	@./$(BUILD)/sabha sim --protocol all --nodes 5 --seeds 1..20 --ops 500 --faults all
	@echo
	@./scripts/demo-cluster.sh ./$(BUILD)/sabha
	@echo
	@echo "== the lab: every engine through the seed's benchmark and the monsoon partition (docs/lab.md) =="
	@./$(BUILD)/sabha lab benchmark monsoon --seeds 3 --out lab-out
	@echo "== open lab-out/report.html in a browser for the charts; sabha lab --all runs every scenario =="

# Figures, not pass/fail: simulator speed per engine, the linearizability
# checker, the write-ahead log's group commit on this machine's disk.
bench: build
	@for p in raft multipaxos paxos; do \
		echo "== sim: $$p, 5 nodes, 20 seeds, all faults"; \
		./$(BUILD)/sabha sim --protocol $$p --nodes 5 --seeds 1..20 --faults all | grep -E '^(sim_events_per_s|throughput_ops_per_s|latency_ms_p50|latency_ms_p99):'; \
	done
	@echo "== linearizability checker"; ./$(BUILD)/bench/bench_linearize
	@echo "== write-ahead log"; ./$(BUILD)/bench/bench_wal
	@echo "== in-memory log: heap calls per entry"; ./$(BUILD)/bench/bench_log
	@echo "== key-value store: CPU per SET, heap per key"; ./$(BUILD)/bench/bench_kvstore

format:
	@clang-format -i $$(find include src tests bench -name '*.[ch]')

clean:
	@rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
