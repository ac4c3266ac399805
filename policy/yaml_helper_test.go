package policy_test

import (
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// yamlConfigToJSON turns a "config:" YAML block into the policy's JSON
// config, as the config loader does.
func yamlConfigToJSON(src string) (string, error) {
	var doc struct {
		Config any `yaml:"config"`
	}
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		return "", err
	}
	b, err := json.Marshal(doc.Config)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	return string(b), nil
}
