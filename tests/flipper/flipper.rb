# The real Flipper (Debian's ruby-flipper with its ActiveRecord adapter), driven by the
# real-Flipper test (tests/api/flipper.rs) on its throwaway PostgreSQL. Reads one JSON document
# on stdin, writes one on stdout.
#
#   ruby flipper.rb apply    [{"feature":…, "op":…, "value":…}, …]   → {"done": n}
#   ruby flipper.rb enabled  {"feature":…, "callers":[{"email":…, "sub":…}, …]}
#                            → {"actors":[…], "enabled":[…]}, the actor as VA.gov derives it:
#                              `email&.downcase || account_uuid`
#   ruby flipper.rb gates    {"feature":…} → each gate's value as Flipper reads it, and its type
#
# DATABASE_URL names the database.
require 'json'
require 'active_record'
require 'flipper'
require 'flipper/adapters/active_record'

ActiveRecord::Base.establish_connection(ENV.fetch('DATABASE_URL'))
ActiveRecord::Base.logger = nil
flipper = Flipper.new(Flipper::Adapters::ActiveRecord.new)
Actor = Struct.new(:flipper_id)
input = JSON.parse($stdin.read)

def number(text)
  text.include?('.') || text.include?('e') ? text.to_f : text.to_i
end

case ARGV[0]
when 'apply'
  input.each do |op|
    feature = flipper[op.fetch('feature')]
    case op.fetch('op')
    when 'add' then flipper.add(op['feature'])
    when 'enable' then feature.enable
    when 'disable' then feature.disable
    when 'percentage' then feature.enable_percentage_of_actors(number(op['value']))
    when 'clear_percentage' then feature.disable_percentage_of_actors
    when 'time' then feature.enable_percentage_of_time(number(op['value']))
    when 'add_actor' then feature.enable_actor(Actor.new(op['value']))
    when 'remove_actor' then feature.disable_actor(Actor.new(op['value']))
    else raise "unknown op #{op['op']}"
    end
  end
  puts JSON.generate('done' => input.size)
when 'enabled'
  feature = flipper[input.fetch('feature')]
  actors = input.fetch('callers').map { |c| c['email']&.downcase || c['sub'] }
  puts JSON.generate('actors' => actors, 'enabled' => actors.map { |a| feature.enabled?(Actor.new(a)) })
when 'gates'
  values = flipper[input.fetch('feature')].gate_values
  out = {}
  %i[boolean actors percentage_of_actors percentage_of_time groups].each do |gate|
    value = values.public_send(gate)
    value = value.to_a.sort if value.is_a?(Set)
    out[gate] = { 'value' => value, 'type' => value.class.name }
  end
  puts JSON.generate(out)
else
  raise "usage: flipper.rb apply|enabled|gates"
end
