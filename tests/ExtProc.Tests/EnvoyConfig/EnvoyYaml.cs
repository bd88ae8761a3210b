using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace ExtProc.Tests.EnvoyConfig;

/// <summary>
/// Turns Envoy YAML into JSON the way Envoy does before its protobuf JSON parser runs (ValueUtil::loadFromYaml):
/// quoted scalars stay strings; plain scalars become bool, then integer, then floating point, else string. So a
/// plain <c>port_value: 10000</c> is a number and a plain <c>stat_prefix: 123</c> is a number too (and then fails
/// as a string field, exactly as in Envoy).
/// </summary>
internal static partial class EnvoyYaml
{
    public static JsonNode? Parse(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        if (stream.Documents.Count != 1)
        {
            throw new InvalidOperationException($"expected exactly one YAML document, found {stream.Documents.Count}");
        }

        return Convert(stream.Documents[0].RootNode, "$");
    }

    private static JsonNode? Convert(YamlNode node, string path)
    {
        switch (node)
        {
            case YamlMappingNode mapping:
                var obj = new JsonObject();
                foreach (var (keyNode, valueNode) in mapping.Children)
                {
                    if (keyNode is not YamlScalarNode { Value: { } key })
                    {
                        throw new InvalidOperationException($"{path}: mapping keys must be scalars");
                    }

                    if (key == "<<")
                    {
                        throw new InvalidOperationException($"{path}: YAML merge keys are not supported by this checker");
                    }

                    if (obj.ContainsKey(key))
                    {
                        throw new InvalidOperationException($"{path}: duplicate key '{key}'");
                    }

                    obj[key] = Convert(valueNode, $"{path}.{key}");
                }

                return obj;
            case YamlSequenceNode sequence:
                var array = new JsonArray();
                var i = 0;
                foreach (var item in sequence.Children)
                {
                    array.Add(Convert(item, $"{path}[{i++}]"));
                }

                return array;
            case YamlScalarNode scalar:
                return Scalar(scalar);
            default:
                throw new InvalidOperationException($"{path}: unsupported YAML node {node.NodeType}");
        }
    }

    private static JsonNode? Scalar(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? string.Empty;
        if (scalar.Style != ScalarStyle.Plain || !scalar.Tag.IsEmpty)
        {
            return JsonValue.Create(text);
        }

        if (text is "" or "~" or "null" or "Null" or "NULL")
        {
            return null;
        }

        // yaml-cpp's bool spellings.
        switch (text)
        {
            case "y" or "Y" or "yes" or "Yes" or "YES" or "true" or "True" or "TRUE" or "on" or "On" or "ON":
                return JsonValue.Create(true);
            case "n" or "N" or "no" or "No" or "NO" or "false" or "False" or "FALSE" or "off" or "Off" or "OFF":
                return JsonValue.Create(false);
        }

        if (IntegerRegex().IsMatch(text))
        {
            var digits = text.TrimStart('+', '-');
            var hex = digits.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
            if (hex ? long.TryParse(digits[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value)
                    : long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out value))
            {
                value = text[0] == '-' ? -value : value;
                // Like Envoy: small integers become numbers, large ones decimal strings (proto3 JSON takes both for ints).
                return value is >= int.MinValue and <= int.MaxValue ? JsonValue.Create(value) : JsonValue.Create(value.ToString(CultureInfo.InvariantCulture));
            }
        }

        if (FloatRegex().IsMatch(text))
        {
            return JsonValue.Create(double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture));
        }

        return JsonValue.Create(text);
    }

    [GeneratedRegex(@"^[-+]?(0x[0-9a-fA-F]+|[0-9]+)$")]
    private static partial Regex IntegerRegex();

    [GeneratedRegex(@"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")]
    private static partial Regex FloatRegex();
}
