package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/configsync/configsync/metrics"
)

const k8sDir = "kubernetes"

// doc is one parsed YAML document and the file it came from.
type doc struct {
	file string
	m    map[string]any
}

func loadDocs(t *testing.T) []doc {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var docs []doc
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var m map[string]any
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if m != nil {
				docs = append(docs, doc{filepath.Base(f), m})
			}
		}
	}
	return docs
}

// get walks a path of map keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

// documentedEnv reads the CONFIGSYNC_* variables of docs/operations.md's settings
// table: the variables the binary reads.
func documentedEnv(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		for _, v := range regexp.MustCompile("`(CONFIGSYNC_[A-Z_]+)").FindAllStringSubmatch(line, -1) {
			vars[v[1]] = true
		}
	}
	if !vars["CONFIGSYNC_NATS_URL"] || !vars["CONFIGSYNC_ENCRYPTION_KEY"] {
		t.Fatalf("settings table not found in docs/operations.md (got %v)", vars)
	}
	return vars
}

func TestKustomizationListsEveryFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Kind      string   `yaml:"kind"`
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	if k.Kind != "Kustomization" {
		t.Errorf("kustomization kind = %q", k.Kind)
	}
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			want = append(want, b)
		}
	}
	got := slices.Clone(k.Resources)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, files %v", got, want)
	}
}

func TestKinds(t *testing.T) {
	count := map[string]int{}
	for _, d := range loadDocs(t) {
		kind, api := str(d.m, "kind"), str(d.m, "apiVersion")
		if kind == "" || api == "" || str(d.m, "metadata", "name") == "" {
			t.Errorf("%s: a document without kind, apiVersion or name", d.file)
		}
		if kind != "Namespace" && str(d.m, "metadata", "namespace") != "configsync" {
			t.Errorf("%s: %s not in namespace configsync", d.file, kind)
		}
		count[kind]++
	}
	want := map[string]int{"Namespace": 1, "ConfigMap": 1, "Secret": 1, "Deployment": 3, "Service": 1,
		"PodDisruptionBudget": 1, "HorizontalPodAutoscaler": 1}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%d %s, want %d", count[k], k, n)
		}
	}
	for k := range count {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected kind %s", k)
		}
	}
}

// roleChecks is what each Deployment must have.
var roleChecks = map[string]struct {
	replicas  int
	readiness string // path, or "" for none
	liveness  string
}{
	"api":       {2, "/readyz", "/healthz"},
	"worker":    {3, "", "/healthz"},
	"scheduler": {2, "", ""},
}

func TestDeployments(t *testing.T) {
	docs := loadDocs(t)
	env := documentedEnv(t)
	byKind := map[string][]doc{}
	for _, d := range docs {
		byKind[str(d.m, "kind")] = append(byKind[str(d.m, "kind")], d)
	}
	if len(byKind["ConfigMap"]) != 1 || len(byKind["Secret"]) != 1 {
		t.Fatal("want one ConfigMap and one Secret")
	}
	cm, secret := byKind["ConfigMap"][0].m, byKind["Secret"][0].m
	for k := range get(cm, "data").(map[string]any) {
		if !env[k] {
			t.Errorf("ConfigMap key %s is not a documented CONFIGSYNC_* variable", k)
		}
	}
	secretKeys := get(secret, "stringData").(map[string]any)
	for k, v := range secretKeys {
		if !env[k] {
			t.Errorf("Secret key %s is not a documented CONFIGSYNC_* variable", k)
		}
		if !strings.Contains(v.(string), "REPLACE") {
			t.Errorf("Secret key %s is not a marked placeholder", k)
		}
	}

	podLabels := map[string]map[string]any{}
	seen := map[string]bool{}
	for _, d := range byKind["Deployment"] {
		name := str(d.m, "metadata", "name")
		pod := get(d.m, "spec", "template")
		containers := list(pod, "spec", "containers")
		if len(containers) != 1 {
			t.Fatalf("%s: %d containers", name, len(containers))
		}
		c := containers[0]
		args := list(c, "args")
		role := str(args, 0)
		want, ok := roleChecks[role]
		if !ok {
			t.Fatalf("%s: unknown role %q", name, role)
		}
		seen[role] = true
		podLabels[name] = get(pod, "metadata", "labels").(map[string]any)
		if got := get(d.m, "spec", "replicas"); got != want.replicas {
			t.Errorf("%s: replicas %v, want %d", name, got, want.replicas)
		}
		// The selector matches the pod template's labels.
		for k, v := range get(d.m, "spec", "selector", "matchLabels").(map[string]any) {
			if podLabels[name][k] != v {
				t.Errorf("%s: selector %s=%v does not match the pod labels", name, k, v)
			}
		}
		// Hardening and resources.
		if get(pod, "spec", "securityContext", "runAsNonRoot") != true || get(c, "securityContext", "runAsNonRoot") != true {
			t.Errorf("%s: not runAsNonRoot", name)
		}
		if get(c, "securityContext", "readOnlyRootFilesystem") != true {
			t.Errorf("%s: root filesystem not read-only", name)
		}
		if get(c, "securityContext", "allowPrivilegeEscalation") != false {
			t.Errorf("%s: privilege escalation allowed", name)
		}
		for _, kind := range []string{"requests", "limits"} {
			for _, r := range []string{"cpu", "memory"} {
				if str(c, "resources", kind, r) == "" {
					t.Errorf("%s: no resources.%s.%s", name, kind, r)
				}
			}
		}
		// Settings: only variables the binary reads, from the ConfigMap or Secret.
		for _, ef := range list(c, "envFrom") {
			if ref := str(ef, "configMapRef", "name"); ref != str(cm, "metadata", "name") {
				t.Errorf("%s: envFrom %v is not the ConfigMap", name, ef)
			}
		}
		for _, e := range list(c, "env") {
			n := str(e, "name")
			if !env[n] {
				t.Errorf("%s: env %s is not a documented CONFIGSYNC_* variable", name, n)
			}
			if ref := get(e, "valueFrom", "secretKeyRef"); ref != nil {
				if str(ref, "name") != str(secret, "metadata", "name") || secretKeys[str(ref, "key")] == nil {
					t.Errorf("%s: env %s refers to a missing secret key", name, n)
				}
			}
		}
		// The garbage collector's soft limit leaves the container room (see
		// docs/operations.md, Memory): between half and seven eighths of its limit.
		for _, e := range list(c, "env") {
			if str(e, "name") != "CONFIGSYNC_MEMORY_LIMIT" {
				continue
			}
			soft, limit := bytesOf(t, str(e, "value")), bytesOf(t, str(c, "resources", "limits", "memory"))
			if soft*2 < limit || soft*8 > limit*7 {
				t.Errorf("%s: CONFIGSYNC_MEMORY_LIMIT %s is not between 1/2 and 7/8 of the memory limit %s",
					name, str(e, "value"), str(c, "resources", "limits", "memory"))
			}
		}
		// Flags: every --flag is one the role's command declares.
		src := roleSource(t, role)
		for _, a := range args[1:] {
			if f, ok := strings.CutPrefix(a.(string), "--"); ok {
				if !strings.Contains(src, `"`+f+`"`) {
					t.Errorf("%s: flag --%s is not declared by configsync %s", name, f, role)
				}
			}
		}
		// Probes point at routes the process serves, on a declared port.
		ports := map[string]int{}
		for _, p := range list(c, "ports") {
			ports[str(p, "name")] = get(p, "containerPort").(int)
		}
		checkProbe(t, name, role, "readinessProbe", c, want.readiness, ports, args)
		checkProbe(t, name, role, "livenessProbe", c, want.liveness, ports, args)
	}
	for role := range roleChecks {
		if !seen[role] {
			t.Errorf("no Deployment for %s", role)
		}
	}

	matches := func(sel map[string]any, deployment string) bool {
		labels := podLabels[deployment]
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	for _, d := range byKind["Service"] {
		if !matches(get(d.m, "spec", "selector").(map[string]any), "configsync-api") {
			t.Errorf("Service %s does not select the api pods", str(d.m, "metadata", "name"))
		}
		for _, p := range list(d.m, "spec", "ports") {
			if tp := get(p, "targetPort"); tp != "http" && tp != 8080 {
				t.Errorf("Service port targets %v, not the api's http port", tp)
			}
		}
	}
	for _, d := range byKind["PodDisruptionBudget"] {
		if !matches(get(d.m, "spec", "selector", "matchLabels").(map[string]any), "configsync-worker") {
			t.Error("the PodDisruptionBudget does not select the worker pods")
		}
	}
	for _, d := range byKind["HorizontalPodAutoscaler"] {
		if str(d.m, "spec", "scaleTargetRef", "name") != "configsync-worker" || str(d.m, "spec", "scaleTargetRef", "kind") != "Deployment" {
			t.Error("the HorizontalPodAutoscaler does not scale the worker Deployment")
		}
		if str(d.m, "spec", "metrics", 0, "resource", "name") != "cpu" {
			t.Error("the HorizontalPodAutoscaler does not scale on CPU")
		}
		if min, _ := get(d.m, "spec", "minReplicas").(int); min < roleChecks["worker"].replicas {
			t.Errorf("HPA minReplicas %d is below the worker's replicas", min)
		}
	}
}

// roleSource returns the Go source declaring a role's command and its routes.
func roleSource(t *testing.T, role string) string {
	t.Helper()
	var src strings.Builder
	files := []string{"../cmd/configsync/" + role + ".go"}
	if role == "api" {
		files = append(files, "../api/api.go")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(data)
	}
	return src.String()
}

func checkProbe(t *testing.T, name, role, probe string, c any, wantPath string, ports map[string]int, args []any) {
	t.Helper()
	p := get(c, probe)
	if wantPath == "" {
		if p != nil {
			t.Errorf("%s: unexpected %s", name, probe)
		}
		return
	}
	path := str(p, "httpGet", "path")
	if path != wantPath {
		t.Errorf("%s: %s path %q, want %q", name, probe, path, wantPath)
	}
	// The route is registered by the role: the API's route table or the worker's
	// health mux.
	src := roleSource(t, role)
	if !strings.Contains(src, `"`+path+`"`) && !strings.Contains(src, `"GET `+path+`"`) {
		t.Errorf("%s: %s path %s is not a route configsync %s serves", name, probe, path, role)
	}
	port := get(p, "httpGet", "port")
	var num int
	switch v := port.(type) {
	case string:
		n, ok := ports[v]
		if !ok {
			t.Errorf("%s: %s port %q is not a declared container port", name, probe, v)
		}
		num = n
	case int:
		num = v
	}
	// The process listens on that port: the address flag ends with it.
	listening := false
	for i, a := range args {
		if (a == "--http-addr" || a == "--health-addr") && i+1 < len(args) && strings.HasSuffix(args[i+1].(string), ":"+strconv.Itoa(num)) {
			listening = true
		}
	}
	if !listening {
		t.Errorf("%s: %s port %d is not the address the process listens on (%v)", name, probe, num, args)
	}
}

// TestKustomizeBuild renders the manifests with kubectl when it is installed.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed")
	}
	out, err := exec.Command(kubectl, "kustomize", k8sDir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("image: registry.example.com/configsync:latest")) {
		t.Errorf("the image was not set by the kustomization:\n%s", out)
	}
}

// apiMetrics are the API's metric families (api/metrics.go; they are not exported).
var apiMetrics = []string{"configsync_api_requests_total", "configsync_api_request_duration_seconds"}

func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("grafana/configsync.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatal("the dashboard has no title, uid or panels")
	}
	known := map[string]bool{}
	for _, n := range slices.Concat(metrics.Names, metrics.SourceNames, metrics.ConsumerNames, apiMetrics) {
		known[n] = true
	}
	histograms := map[string]bool{metrics.RunDurationSeconds: true, metrics.SourceRequestDurationSeconds: true, "configsync_api_request_duration_seconds": true}
	used := map[string]bool{}
	name := regexp.MustCompile(`configsync_[a-z_]+`)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			names := name.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: expr %q names no configsync metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				base := n
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, suf); ok && histograms[b] {
						base = b
					}
				}
				if !known[base] {
					t.Errorf("panel %q: %s is not a metric configsync exports", p.Title, n)
				}
				used[base] = true
			}
		}
	}
	for n := range known {
		if !used[n] {
			t.Errorf("metric %s has no panel", n)
		}
	}
}

// bytesOf reads a size as Kubernetes (Mi, Gi) or Go's GOMEMLIMIT (MiB, GiB) writes it.
func bytesOf(t *testing.T, s string) int64 {
	t.Helper()
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"MiB", 1 << 20}, {"GiB", 1 << 30}, {"Mi", 1 << 20}, {"Gi", 1 << 30}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("size %q: %v", s, err)
			}
			return v * u.mult
		}
	}
	t.Fatalf("size %q: want Mi, Gi, MiB or GiB", s)
	return 0
}
