-- wrk script: POSTs ~1 KB Topview notices. BENCH_MODE=new gives every request its own
-- uuid (prefix BENCH_PREFIX); BENCH_MODE=dup sends one uuid over and over.
local mode = os.getenv("BENCH_MODE") or "new"
local prefix = os.getenv("BENCH_PREFIX") or "run"
local counter = 0
local threads = 0

local result = '{\"previewVideos\":[{\"coverUrl\":\"https://aigc.s3.amazonaws.com/analyzed_video/task/export/487a84446461405088b751861d497dfd.jpg\",\"scriptId\":0,\"status\":\"success\",\"videoDuration\":36096000,\"videoUrl\":\"https://aigc.s3.amazonaws.com/analyzed_video/task/export/487a84446461405088b751861d497dfd_topview.ai.mp4\"}],\"status\":\"success\",\"taskId\":\"1a019a9be0cd4d79838671e53af2c20d\"}'
local template = '{"uuid":"%s","bizType":"M2V_PREVIEW","taskId":"%s","status":"success","errorMsg":"","result":"' .. result:gsub('"', '\\"') .. '"}'
local headers = {["Content-Type"] = "application/json", ["Topview-Uid"] = "bench-uid"}

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function request()
  counter = counter + 1
  local uuid = prefix .. "-dup"
  if mode == "new" then
    uuid = string.format("%s-%d-%d", prefix, tid, counter)
  end
  return wrk.format("POST", nil, headers, string.format(template, uuid, uuid))
end
