-- The report writes figure paths relative to the project root ('/data/processed/...') or, for
-- results outside the project, as absolute paths. analysis/render.py renders a copy of the
-- report in a work folder, so Quarto's project root is that folder: copy each figure into
-- _figures/ beside the document and point the image there (the PDF and HTML then embed it).
local root = os.getenv("CITYREPORT_PROJECT_ROOT")
local copied = {}

local function readable(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function Image(img)
  local src = img.src
  if src:sub(1, 1) ~= "/" then return nil end
  local here = pandoc.path.directory(quarto.doc.input_file)
  if readable(pandoc.path.join({here, src:sub(2)})) then return nil end
  local candidates = {src}
  if root then table.insert(candidates, 1, root .. src) end
  for _, path in ipairs(candidates) do
    if readable(path) then
      local name = "_figures/" .. path:sub(2):gsub("/", "__")
      if not copied[name] then
        pandoc.system.make_directory(pandoc.path.join({here, "_figures"}), true)
        local fin = io.open(path, "rb")
        local data = fin:read("a")
        fin:close()
        local fout = io.open(pandoc.path.join({here, name}), "wb")
        fout:write(data)
        fout:close()
        copied[name] = true
      end
      img.src = name
      return img
    end
  end
  error("figure not found: " .. src)
end
