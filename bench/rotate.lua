-- Rotates through request paths read from a file (one a line), one path per request.
-- Usage: wrk -s bench/rotate.lua URL -- PATHS_FILE
-- Prints "paths N used M" at the end, so the bench can tell whether every request
-- got a path of its own (cold runs) or the list wrapped around (warm runs).

local requests = {}
-- Globals, so that done() can read them from each thread with thread:get().
path_count = 0
used = 0

function init(args)
  for line in io.lines(args[1]) do
    path_count = path_count + 1
    requests[path_count] = wrk.format("GET", line)
  end
  if path_count == 0 then
    error("no paths in " .. args[1])
  end
end

function request()
  used = used + 1
  return requests[(used - 1) % path_count + 1]
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local total, paths = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("used")
    paths = thread:get("path_count") or paths
  end
  io.write(string.format("paths %d used %d\n", paths, total))
end
