package main
import _ "github.com/fluent/fluent-bit-go/output"
func main(){}
