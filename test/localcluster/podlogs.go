package localcluster

import (
	"path/filepath"
	"sort"
)

// PodLogFiles returns the container log files of the pods in the namespaces matching
// nsPattern (a filepath.Match pattern, "*" for all), sorted, whichever kind of node ran
// them: the node agent's RunDir/pods/<ns>_<pod>/logs/<container>.log and the real nodes'
// RunDir/nodes/<node>/pod-logs/<ns>_<pod>_<uid>/<container>/<restart>.log. They stay after
// Close.
func PodLogFiles(runDir, nsPattern string) []string {
	var files []string
	for _, pattern := range []string{
		filepath.Join(runDir, "pods", nsPattern+"_*", "logs", "*.log"),
		filepath.Join(runDir, "nodes", "*", "pod-logs", nsPattern+"_*", "*", "*.log"),
	} {
		m, _ := filepath.Glob(pattern) // the patterns are well formed unless nsPattern is not
		files = append(files, m...)
	}
	sort.Strings(files)
	return files
}
