using Google.Protobuf.Reflection;

namespace ExtProc.Tests.Wire;

/// <summary>
/// A by-full-name view of a FileDescriptorSet. Works on the raw descriptor protos because C# Google.Protobuf
/// has no dynamic messages; protoc writes every type reference fully qualified, so no scope resolution is needed.
/// </summary>
internal sealed class DescriptorIndex
{
    private readonly Dictionary<string, DescriptorProto> _messages = new(StringComparer.Ordinal);
    private readonly Dictionary<string, EnumDescriptorProto> _enums = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ServiceDescriptorProto> _services = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _typesByFile = new(StringComparer.Ordinal);

    public DescriptorIndex(IEnumerable<FileDescriptorProto> files)
    {
        foreach (var file in files)
        {
            var names = new List<string>();
            _typesByFile[file.Name] = names;
            var prefix = string.IsNullOrEmpty(file.Package) ? string.Empty : file.Package + ".";
            foreach (var message in file.MessageType)
            {
                AddMessage(prefix + message.Name, message, names);
            }

            foreach (var e in file.EnumType)
            {
                _enums[prefix + e.Name] = e;
                names.Add(prefix + e.Name);
            }

            foreach (var service in file.Service)
            {
                _services[prefix + service.Name] = service;
                names.Add(prefix + service.Name);
            }
        }
    }

    public IReadOnlyDictionary<string, DescriptorProto> Messages => _messages;

    public IReadOnlyDictionary<string, EnumDescriptorProto> Enums => _enums;

    public IReadOnlyDictionary<string, ServiceDescriptorProto> Services => _services;

    /// <summary>Full names of every message, enum and service declared in a file, nested ones included.</summary>
    public IReadOnlyList<string> TypesInFile(string fileName) =>
        _typesByFile.TryGetValue(fileName, out var names) ? names : [];

    public static string StripDot(string typeName) => typeName.StartsWith('.') ? typeName[1..] : typeName;

    public DescriptorProto? FindMessage(string fullName) => _messages.GetValueOrDefault(StripDot(fullName));

    public EnumDescriptorProto? FindEnum(string fullName) => _enums.GetValueOrDefault(StripDot(fullName));

    public bool IsMap(FieldDescriptorProto field) =>
        field.Label == FieldDescriptorProto.Types.Label.Repeated
        && field.Type == FieldDescriptorProto.Types.Type.Message
        && FindMessage(field.TypeName)?.Options?.MapEntry == true;

    /// <summary>The real (non-synthetic) oneof a field belongs to, or null.</summary>
    public static string? OneofOf(DescriptorProto message, FieldDescriptorProto field) =>
        field.HasOneofIndex && !field.Proto3Optional ? message.OneofDecl[field.OneofIndex].Name : null;

    private void AddMessage(string fullName, DescriptorProto message, List<string> names)
    {
        _messages[fullName] = message;
        names.Add(fullName);
        foreach (var nested in message.NestedType)
        {
            AddMessage(fullName + "." + nested.Name, nested, names);
        }

        foreach (var e in message.EnumType)
        {
            _enums[fullName + "." + e.Name] = e;
            names.Add(fullName + "." + e.Name);
        }
    }
}
