// forkd-helm-render renders a Helm chart the way `helm template` does, for
// tests on machines without Helm: Go's text/template with the sprig
// functions (the engine Helm uses) plus Helm's own additions (include, tpl,
// required, toYaml, fromYaml, toJson, fromJson, lookup, .Files.Get), values
// coalesced like Helm's (-f files over values.yaml, null deletes a key) and
// checked against values.schema.json with gojsonschema, Helm's validator.
//
// Usage:
//
//	forkd-helm-render [-f values.yaml]... [-release NAME] [-namespace NS]
//	                  [-kube-version v1.30.0] [-o yaml|json] [-notes] CHART_DIR
//	forkd-helm-render yaml2json < multi-document.yaml
//
// -o yaml prints each rendered template after "---\n# Source: ..." like
// Helm; -o json prints one JSON array of every object (empty documents
// dropped). -notes prints the rendered NOTES.txt instead. yaml2json turns a
// YAML stream (kubectl kustomize's output) into the same JSON array.
// Exit status 1 with the reason on stderr when values fail the schema, a
// template fails (required, fail, a parse error) or output is not YAML.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig/v3"
	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "yaml2json" {
		if err := yamlStreamToJSON(os.Stdin, os.Stdout); err != nil {
			fail(err)
		}
		return
	}
	var valueFiles multiFlag
	flag.Var(&valueFiles, "f", "values file (YAML or JSON); repeatable, later ones win")
	release := flag.String("release", "forkd", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "v1.30.0", "Capabilities.KubeVersion")
	output := flag.String("o", "yaml", "yaml or json")
	notes := flag.Bool("notes", false, "print the rendered NOTES.txt only")
	flag.Parse()
	if flag.NArg() != 1 {
		fail(errors.New("usage: forkd-helm-render [flags] CHART_DIR"))
	}
	chartDir := flag.Arg(0)

	r, err := newRenderer(chartDir, valueFiles, *release, *namespace, *kubeVersion)
	if err != nil {
		fail(err)
	}
	rendered, err := r.render()
	if err != nil {
		fail(err)
	}
	if *notes {
		fmt.Print(rendered[r.prefix+"NOTES.txt"])
		return
	}
	delete(rendered, r.prefix+"NOTES.txt")
	names := make([]string, 0, len(rendered))
	for name := range rendered {
		names = append(names, name)
	}
	sort.Strings(names)
	switch *output {
	case "yaml":
		for _, name := range names {
			body := rendered[name]
			if strings.TrimSpace(body) == "" {
				continue
			}
			fmt.Printf("---\n# Source: %s\n%s\n", name, strings.TrimRight(body, "\n"))
		}
	case "json":
		var all []interface{}
		for _, name := range names {
			objs, err := yamlDocs(rendered[name])
			if err != nil {
				fail(fmt.Errorf("%s: %v", name, err))
			}
			all = append(all, objs...)
		}
		writeJSON(os.Stdout, all)
	default:
		fail(fmt.Errorf("-o must be yaml or json, not %q", *output))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "Error:", err)
	os.Exit(1)
}

// --- values ---------------------------------------------------------------------

func readYAMLMap(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if m == nil {
		m = map[string]interface{}{}
	}
	return m, nil
}

// coalesce merges src over dst like Helm: maps merge key by key, anything
// else in src replaces dst, and a null in src deletes the key.
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		sm, srcIsMap := v.(map[string]interface{})
		dm, dstIsMap := dst[k].(map[string]interface{})
		if srcIsMap && dstIsMap {
			dst[k] = coalesce(dm, sm)
		} else {
			dst[k] = v
		}
	}
	return dst
}

func validateSchema(chartDir, chartName string, values map[string]interface{}) error {
	schema, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	valuesJSON, err := json.Marshal(values)
	if err != nil {
		return err
	}
	result, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema),
		gojsonschema.NewBytesLoader(valuesJSON))
	if err != nil {
		return fmt.Errorf("values.schema.json: %v", err)
	}
	if result.Valid() {
		return nil
	}
	var b strings.Builder
	b.WriteString("values don't meet the specifications of the schema(s) in the following chart(s):\n")
	b.WriteString(chartName + ":\n")
	for _, e := range result.Errors() {
		fmt.Fprintf(&b, "- %s\n", e)
	}
	return errors.New(strings.TrimRight(b.String(), "\n"))
}

// --- the template engine -----------------------------------------------------------

type renderer struct {
	chartDir string
	prefix   string // "<chart name>/templates/"
	root     *template.Template
	data     map[string]interface{}
	names    []string // templates to render (no partials)
}

// Files is .Files: the chart's files outside templates/.
type Files struct{ dir string }

func (f Files) GetBytes(name string) []byte {
	clean := path.Clean("/" + name)[1:]
	if strings.HasPrefix(clean, "templates/") {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(clean)))
	if err != nil {
		return nil
	}
	return data
}

func (f Files) Get(name string) string { return string(f.GetBytes(name)) }

func (f Files) Lines(name string) []string {
	s := f.Get(name)
	if s == "" {
		return []string{}
	}
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// VersionSet is .Capabilities.APIVersions.
type VersionSet []string

func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

var kubeVersionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)(\.\d+)?$`)

func newRenderer(chartDir string, valueFiles []string, release, namespace,
	kubeVersion string) (*renderer, error) {
	chart, err := readYAMLMap(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	name, _ := chart["name"].(string)
	if name == "" {
		return nil, errors.New("Chart.yaml: name is required")
	}
	values, err := readYAMLMap(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	for _, f := range valueFiles {
		override, err := readYAMLMap(f)
		if err != nil {
			return nil, err
		}
		values = coalesce(values, override)
	}
	if err := validateSchema(chartDir, name, values); err != nil {
		return nil, err
	}
	m := kubeVersionRE.FindStringSubmatch(kubeVersion)
	if m == nil {
		return nil, fmt.Errorf("-kube-version %q is not vMAJOR.MINOR[.PATCH]", kubeVersion)
	}
	gitVersion := "v" + strings.TrimPrefix(kubeVersion, "v")
	// Helm capitalises Chart.yaml's keys (name -> Name, appVersion -> AppVersion).
	chartObj := map[string]interface{}{}
	for k, v := range chart {
		chartObj[strings.ToUpper(k[:1])+k[1:]] = v
	}
	r := &renderer{
		chartDir: chartDir,
		prefix:   name + "/templates/",
		data: map[string]interface{}{
			"Values": values,
			"Chart":  chartObj,
			"Release": map[string]interface{}{
				"Name": release, "Namespace": namespace, "Service": "Helm",
				"IsInstall": true, "IsUpgrade": false, "Revision": 1,
			},
			"Capabilities": map[string]interface{}{
				"KubeVersion": map[string]interface{}{
					"Version": gitVersion, "GitVersion": gitVersion,
					"Major": m[1], "Minor": m[2],
				},
				"APIVersions": VersionSet{
					"v1", "apps/v1", "policy/v1", "autoscaling/v2", "batch/v1",
					"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1",
				},
				"HelmVersion": map[string]interface{}{"Version": "v3.14.0"},
			},
			"Files": Files{dir: chartDir},
		},
	}
	if err := r.parse(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *renderer) funcs() template.FuncMap {
	f := sprig.TxtFuncMap()
	// Helm removes these: a chart must not read the machine's environment.
	delete(f, "env")
	delete(f, "expandenv")
	f["toYaml"] = func(v interface{}) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	f["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromYamlArray"] = func(s string) []interface{} {
		var a []interface{}
		if err := yaml.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	f["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return v, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return v, errors.New(msg)
		}
		return v, nil
	}
	// No cluster here: lookup finds nothing, as in `helm template`.
	f["lookup"] = func(apiVersion, kind, namespace, name string) map[string]interface{} {
		return map[string]interface{}{}
	}
	// include and tpl need the parsed set; they are rebound in parse().
	f["include"] = func(string, interface{}) (string, error) { return "", nil }
	f["tpl"] = func(string, interface{}) (string, error) { return "", nil }
	return f
}

func (r *renderer) parse() error {
	root := template.New("root").Funcs(r.funcs()).Option("missingkey=zero")
	r.root = root
	root.Funcs(template.FuncMap{
		"include": func(name string, data interface{}) (string, error) {
			var buf bytes.Buffer
			if err := root.ExecuteTemplate(&buf, name, data); err != nil {
				return "", err
			}
			return buf.String(), nil
		},
		"tpl": func(text string, data interface{}) (string, error) {
			clone, err := root.Clone()
			if err != nil {
				return "", err
			}
			t, err := clone.New(r.prefix + "tpl").Parse(text)
			if err != nil {
				return "", fmt.Errorf("tpl: %v", err)
			}
			var buf bytes.Buffer
			if err := t.Execute(&buf, data); err != nil {
				return "", fmt.Errorf("tpl: %v", err)
			}
			return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
		},
	})
	templatesDir := filepath.Join(r.chartDir, "templates")
	return filepath.Walk(templatesDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(templatesDir, p)
		name := r.prefix + filepath.ToSlash(rel)
		text, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if _, err := root.New(name).Parse(string(text)); err != nil {
			return err
		}
		if !strings.HasPrefix(path.Base(name), "_") {
			r.names = append(r.names, name)
		}
		return nil
	})
}

// render executes every non-partial template; keys are template names.
func (r *renderer) render() (map[string]string, error) {
	out := map[string]string{}
	for _, name := range r.names {
		data := map[string]interface{}{}
		for k, v := range r.data {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{
			"Name": name, "BasePath": strings.TrimSuffix(r.prefix, "/"),
		}
		var buf bytes.Buffer
		if err := r.root.ExecuteTemplate(&buf, name, data); err != nil {
			return nil, err
		}
		out[name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return out, nil
}

// --- YAML streams -------------------------------------------------------------------

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// yamlDocs parses a YAML stream into objects, dropping empty documents.
func yamlDocs(stream string) ([]interface{}, error) {
	var objs []interface{}
	for i, doc := range docSeparator.Split(stream, -1) {
		var obj interface{}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, fmt.Errorf("document %d: %v\n%s", i, err, doc)
		}
		if obj == nil {
			continue
		}
		if _, ok := obj.(map[string]interface{}); !ok {
			return nil, fmt.Errorf("document %d is not a mapping:\n%s", i, doc)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

func yamlStreamToJSON(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	objs, err := yamlDocs(string(data))
	if err != nil {
		return err
	}
	writeJSON(out, objs)
	return nil
}

func writeJSON(out io.Writer, objs []interface{}) {
	if objs == nil {
		objs = []interface{}{}
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", " ")
	if err := enc.Encode(objs); err != nil {
		fail(err)
	}
}
