using Google.Protobuf.Reflection;
using FieldType = Google.Protobuf.Reflection.FieldDescriptorProto.Types.Type;
using Label = Google.Protobuf.Reflection.FieldDescriptorProto.Types.Label;

namespace ExtProc.Tests.Wire;

/// <summary>A field as the wire sees it: message, number, kind, referenced type, repeated, oneof. Names are kept for the report.</summary>
internal sealed record FieldSpec(string Message, int Number, string Name, FieldType Type, string? TypeName = null, bool Repeated = false, string? Oneof = null);

/// <summary>An enum value that upstream's copy may lack.</summary>
internal sealed record EnumValueSpec(string Enum, string Name, int Number);

/// <summary>A field whose name may differ between upstream and ours (names never travel on the wire).</summary>
internal sealed record AllowedRename(string Message, int Number, string UpstreamName, string OurName, string Why);

/// <summary>
/// Compares our descriptors with upstream's for a chosen set of upstream types and lists every difference that
/// matters on the wire (plus names, which matter for JSON and for readers). Ours may carry extra fields or enum
/// values only when the newer-field table names them exactly.
/// </summary>
internal sealed class WireComparer(
    DescriptorIndex upstream,
    DescriptorIndex ours,
    IReadOnlyCollection<FieldSpec> newerFields,
    IReadOnlyCollection<EnumValueSpec> newerEnumValues,
    IReadOnlyCollection<AllowedRename> renames)
{
    private readonly List<string> _mismatches = [];

    /// <param name="upstreamTypes">Full names of the upstream messages, enums and services that ours must reproduce.</param>
    /// <param name="ourTypes">Full names of every type ours declares; each must be upstream or a newer message from the table.</param>
    public IReadOnlyList<string> Compare(IReadOnlyCollection<string> upstreamTypes, IReadOnlyCollection<string> ourTypes)
    {
        _mismatches.Clear();
        foreach (var name in upstreamTypes)
        {
            if (upstream.Messages.TryGetValue(name, out var message))
            {
                CompareMessage(name, message);
            }
            else if (upstream.Enums.TryGetValue(name, out var e))
            {
                CompareEnum(name, e);
            }
            else if (upstream.Services.TryGetValue(name, out var service))
            {
                CompareService(name, service);
            }
            else
            {
                Report($"{name}: not found in the upstream descriptor set (the comparison scope is stale)");
            }
        }

        var newerMessages = newerFields.Select(static f => f.Message).Where(m => upstream.FindMessage(m) is null).ToHashSet(StringComparer.Ordinal);
        foreach (var name in ourTypes)
        {
            if (!upstreamTypes.Contains(name) && !newerMessages.Contains(name) && !IsNestedOfNewer(name, newerMessages))
            {
                Report($"{name}: declared by ours but neither upstream nor in the newer-field table");
            }
        }

        foreach (var message in newerMessages)
        {
            if (ours.FindMessage(message) is { } ourMessage)
            {
                CheckOursAgainstTable(message, ourMessage);
            }
            else
            {
                Report($"{message}: newer message from the spec table is missing in ours");
            }
        }

        foreach (var value in newerEnumValues)
        {
            var ourEnum = ours.FindEnum(value.Enum);
            var ourValue = ourEnum?.Value.FirstOrDefault(v => v.Number == value.Number);
            if (ourValue is null)
            {
                Report($"{value.Enum}.{value.Name} = {value.Number}: newer enum value from the spec table is missing in ours");
            }
            else if (ourValue.Name != value.Name)
            {
                Report($"{value.Enum} = {value.Number}: name spec table '{value.Name}', ours '{ourValue.Name}'");
            }
        }

        return [.. _mismatches];
    }

    private static bool IsNestedOfNewer(string name, HashSet<string> newerMessages) =>
        newerMessages.Any(m => name.StartsWith(m + ".", StringComparison.Ordinal));

    private void CompareMessage(string name, DescriptorProto up)
    {
        var our = ours.FindMessage(name);
        if (our is null)
        {
            Report($"{name}: message missing in ours");
            return;
        }

        if ((up.Options?.MapEntry ?? false) != (our.Options?.MapEntry ?? false))
        {
            Report($"{name}: map_entry upstream {up.Options?.MapEntry ?? false}, ours {our.Options?.MapEntry ?? false}");
        }

        foreach (var upField in up.Field)
        {
            var ourField = our.Field.FirstOrDefault(f => f.Number == upField.Number);
            if (ourField is null)
            {
                Report($"{name} #{upField.Number} ({upField.Name}): field missing in ours");
                continue;
            }

            CompareField(name, up, upField, our, ourField);
        }

        foreach (var ourField in our.Field)
        {
            if (up.Field.Any(f => f.Number == ourField.Number))
            {
                continue;
            }

            var spec = newerFields.FirstOrDefault(s => s.Message == name && s.Number == ourField.Number);
            if (spec is null)
            {
                Report($"{name} #{ourField.Number} ({ourField.Name}): field in ours is neither upstream nor in the newer-field table");
            }
            else
            {
                CheckFieldAgainstSpec(spec, our, ourField);
            }
        }

        foreach (var spec in newerFields.Where(s => s.Message == name))
        {
            if (up.Field.FirstOrDefault(f => f.Number == spec.Number) is { } upField)
            {
                // The npm copy has caught up with the table: both must then agree.
                CheckFieldAgainstSpec(spec, up, upField, side: "upstream");
            }
            else if (!our.Field.Any(f => f.Number == spec.Number))
            {
                Report($"{name} #{spec.Number} ({spec.Name}): newer field from the spec table is missing in ours");
            }
        }

        foreach (var range in up.ReservedRange)
        {
            if (!our.ReservedRange.Any(r => r.Start == range.Start && r.End == range.End))
            {
                Report($"{name}: reserved range [{range.Start}, {range.End}) missing in ours");
            }
        }

        foreach (var reservedName in up.ReservedName)
        {
            if (!our.ReservedName.Contains(reservedName))
            {
                Report($"{name}: reserved name '{reservedName}' missing in ours");
            }
        }
    }

    private void CompareField(string message, DescriptorProto upMessage, FieldDescriptorProto up, DescriptorProto ourMessage, FieldDescriptorProto our)
    {
        var where = $"{message} #{up.Number} ({up.Name})";
        if (up.Name != our.Name && !renames.Any(r => r.Message == message && r.Number == up.Number && r.UpstreamName == up.Name && r.OurName == our.Name))
        {
            Report($"{where}: name upstream '{up.Name}', ours '{our.Name}'");
        }

        if (up.Type != our.Type)
        {
            Report($"{where}: type upstream {up.Type}, ours {our.Type}");
        }

        if (DescriptorIndex.StripDot(up.TypeName) != DescriptorIndex.StripDot(our.TypeName))
        {
            Report($"{where}: type name upstream '{up.TypeName}', ours '{our.TypeName}'");
        }

        if (up.Label != our.Label)
        {
            Report($"{where}: label upstream {up.Label}, ours {our.Label}");
        }

        if (upstream.IsMap(up) != ours.IsMap(our))
        {
            Report($"{where}: map upstream {upstream.IsMap(up)}, ours {ours.IsMap(our)}");
        }

        var upOneof = DescriptorIndex.OneofOf(upMessage, up);
        var ourOneof = DescriptorIndex.OneofOf(ourMessage, our);
        if (upOneof != ourOneof)
        {
            Report($"{where}: oneof upstream '{upOneof ?? "(none)"}', ours '{ourOneof ?? "(none)"}'");
        }

        if (up.Proto3Optional != our.Proto3Optional)
        {
            Report($"{where}: proto3 optional upstream {up.Proto3Optional}, ours {our.Proto3Optional}");
        }

        // Packed encoding changes the bytes of repeated scalars.
        if ((up.Options?.HasPacked ?? false) != (our.Options?.HasPacked ?? false) || (up.Options?.Packed ?? false) != (our.Options?.Packed ?? false))
        {
            Report($"{where}: packed option differs");
        }
    }

    private void CheckOursAgainstTable(string message, DescriptorProto our)
    {
        foreach (var spec in newerFields.Where(s => s.Message == message))
        {
            var field = our.Field.FirstOrDefault(f => f.Number == spec.Number);
            if (field is null)
            {
                Report($"{message} #{spec.Number} ({spec.Name}): newer field from the spec table is missing in ours");
            }
            else
            {
                CheckFieldAgainstSpec(spec, our, field);
            }
        }

        foreach (var field in our.Field.Where(f => !newerFields.Any(s => s.Message == message && s.Number == f.Number)))
        {
            Report($"{message} #{field.Number} ({field.Name}): field in ours is not in the newer-field table");
        }
    }

    private void CheckFieldAgainstSpec(FieldSpec spec, DescriptorProto message, FieldDescriptorProto field, string side = "ours")
    {
        var where = $"{spec.Message} #{spec.Number} ({spec.Name})";
        if (field.Name != spec.Name)
        {
            Report($"{where}: name spec table '{spec.Name}', {side} '{field.Name}'");
        }

        if (field.Type != spec.Type)
        {
            Report($"{where}: type spec table {spec.Type}, {side} {field.Type}");
        }

        if ((spec.TypeName ?? string.Empty) != DescriptorIndex.StripDot(field.TypeName))
        {
            Report($"{where}: type name spec table '{spec.TypeName}', {side} '{field.TypeName}'");
        }

        if (spec.Repeated != (field.Label == Label.Repeated))
        {
            Report($"{where}: repeated spec table {spec.Repeated}, {side} {field.Label == Label.Repeated}");
        }

        var oneof = DescriptorIndex.OneofOf(message, field);
        if (spec.Oneof != oneof)
        {
            Report($"{where}: oneof spec table '{spec.Oneof ?? "(none)"}', {side} '{oneof ?? "(none)"}'");
        }
    }

    private void CompareEnum(string name, EnumDescriptorProto up)
    {
        var our = ours.FindEnum(name);
        if (our is null)
        {
            Report($"{name}: enum missing in ours");
            return;
        }

        foreach (var value in up.Value)
        {
            var ourValue = our.Value.FirstOrDefault(v => v.Number == value.Number);
            if (ourValue is null)
            {
                Report($"{name}.{value.Name} = {value.Number}: enum value missing in ours");
            }
            else if (ourValue.Name != value.Name)
            {
                Report($"{name} = {value.Number}: name upstream '{value.Name}', ours '{ourValue.Name}'");
            }
        }

        foreach (var value in our.Value.Where(v => !up.Value.Any(u => u.Number == v.Number)))
        {
            if (!newerEnumValues.Any(s => s.Enum == name && s.Number == value.Number))
            {
                Report($"{name}.{value.Name} = {value.Number}: enum value in ours is neither upstream nor in the newer-value table");
            }
        }
    }

    private void CompareService(string name, ServiceDescriptorProto up)
    {
        if (!ours.Services.TryGetValue(name, out var our))
        {
            Report($"{name}: service missing in ours");
            return;
        }

        foreach (var method in up.Method)
        {
            var ourMethod = our.Method.FirstOrDefault(m => m.Name == method.Name);
            if (ourMethod is null)
            {
                Report($"{name}.{method.Name}: method missing in ours");
                continue;
            }

            if (method.InputType != ourMethod.InputType || method.OutputType != ourMethod.OutputType)
            {
                Report($"{name}.{method.Name}: signature upstream ({method.InputType}) -> {method.OutputType}, ours ({ourMethod.InputType}) -> {ourMethod.OutputType}");
            }

            if (method.ClientStreaming != ourMethod.ClientStreaming || method.ServerStreaming != ourMethod.ServerStreaming)
            {
                Report($"{name}.{method.Name}: streaming upstream client={method.ClientStreaming} server={method.ServerStreaming}, ours client={ourMethod.ClientStreaming} server={ourMethod.ServerStreaming}");
            }
        }

        foreach (var method in our.Method.Where(m => !up.Method.Any(u => u.Name == m.Name)))
        {
            Report($"{name}.{method.Name}: method in ours is not upstream");
        }
    }

    private void Report(string mismatch) => _mismatches.Add(mismatch);
}
