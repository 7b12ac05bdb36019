// Built offline in GOPATH mode against Debian's Go packages in
// /usr/share/gocode (see ../build-renderer.sh); this file gives the module
// its path, which lets GOPATH mode resolve the /v3 import of sprig.
module forkd.test/helm-render

go 1.19

require (
	github.com/Masterminds/sprig/v3 v3.2.3
	github.com/xeipuuv/gojsonschema v1.2.0
	sigs.k8s.io/yaml v1.3.0
)
